"""Adding entries to their streams at most once per `messageId` and source.

Clients retry with the same `messageId` when an answer is lost, and the spool may replay
an entry Redis took after all (a timeout is not a refusal). A Lua script adds an entry
only if its key `gateway:dedupe:{n}:<source>:<messageId>` does not exist, and then sets it
to expire after the window: the check and the `XADD` are one atomic step, run by
`EVALSHA` in the same pipeline as everything else, so there is no extra round trip. The
key shares the stream's hash tag, so on a Redis Cluster both are in one slot.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.exceptions import ResponseError

from gateway.constants import dedupe_prefix
from gateway.ingest import Entry
from gateway.resp import RespConnection, command

SCRIPT = """
-- KEYS[1]: the stream; KEYS[1 + i]: the dedupe key of entry i
-- ARGV[1]: the window in seconds (0: no dedupe); ARGV[2i], ARGV[2i + 1]: data, source of entry i
local window = tonumber(ARGV[1])
local added = 0
for i = 2, #KEYS do
  if window == 0 or redis.call('EXISTS', KEYS[i]) == 0 then
    -- XADD first: if it fails (e.g. out of memory) no key claims an entry that is not there
    redis.call('XADD', KEYS[1], '*', 'data', ARGV[2 * i - 2], 'source', ARGV[2 * i - 1])
    if window > 0 then
      redis.call('SET', KEYS[i], '1', 'EX', window)
    end
    added = added + 1
  end
end
return added
"""
SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
_SHA = SHA.encode()

CHUNK = 256
"""Entries per script call: a call blocks Redis while it runs, so keep each one short."""


class Writer:
    """Adds entries to their streams, skipping recent duplicates, in one pipeline per call.

    It talks to Redis over one lean pipelined connection (`gateway.resp`): the hot path's
    cost per message is mostly here. Several calls may be in flight on it at once.
    """

    def __init__(self, url: str, window: int, connect_timeout: float) -> None:
        self._url = url
        self._window = b"%d" % window
        self._connect_timeout = connect_timeout
        self._connection: RespConnection | None = None
        self._connecting = asyncio.Lock()

    async def write(self, entries: Sequence[Entry]) -> int:
        """Add `entries` (in order per stream); the number added, duplicates left out.

        Raises `ResponseError` when Redis refuses a part, `OSError` when the connection
        fails; parts may have been added then, and writing all of it again adds none of
        them twice.
        """
        calls = self._calls(entries)
        results = await self._run(calls)
        missing = [
            call
            for call, result in zip(calls, results, strict=True)
            if isinstance(result, hiredis.ReplyError) and str(result).startswith("NOSCRIPT")
        ]
        if missing:  # a restarted or failed-over server has forgotten the script
            await self._run([command(b"SCRIPT", b"LOAD", SCRIPT.encode())])
            # Other errors stay: a cluster node may own some of the slots and not others.
            results = [r for r in results if not str(r).startswith("NOSCRIPT")]
            results += await self._run(missing)
        for result in results:
            if isinstance(result, hiredis.ReplyError):
                raise ResponseError(str(result))
        return sum(int(result) for result in results)

    async def close(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            self._connection.close()

    def _calls(self, entries: Sequence[Entry]) -> list[bytes]:
        by_stream: dict[str, list[Entry]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry)
        calls: list[bytes] = []
        for stream, group in by_stream.items():
            stream_key = stream.encode()
            prefix = dedupe_prefix(stream)  # = dedupe_key(stream, source, id) less the rest
            for start in range(0, len(group), CHUNK):
                chunk = group[start : start + CHUNK]
                keys = [f"{prefix}{e.source}:{e.message_id}".encode() for e in chunk]
                args = [self._window]
                for entry in chunk:
                    args += (entry.data, entry.source.encode())
                calls.append(
                    command(b"EVALSHA", _SHA, b"%d" % (1 + len(chunk)), stream_key, *keys, *args)
                )
        return calls

    async def _run(self, calls: list[bytes]) -> list[Any]:
        connection = await self._connect()
        return await connection.execute(b"".join(calls), len(calls))

    async def _connect(self) -> RespConnection:
        connection = self._connection
        if connection is not None and not connection.closed:
            return connection
        async with self._connecting:
            if self._connection is None or self._connection.closed:
                self._connection = await RespConnection.open(self._url, self._connect_timeout)
            return self._connection
