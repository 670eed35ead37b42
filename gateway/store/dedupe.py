"""Adding entries to their streams at most once per `messageId` and source.

Clients retry with the same `messageId` when an answer is lost, and the spool may replay
an entry Redis took after all (a timeout is not a refusal). A Lua script, run by `EVALSHA`
in the same pipeline as everything else (no extra round trip), checks and adds a chunk of
entries as one atomic step.

The messageIds seen are members `<source>:<messageId>` of one set per partition and time
bucket, `gateway:dedupe:{n}:<bucket>`, a bucket being a quarter of the window by Redis's
clock (`TIME`). A chunk is checked with one `SMISMEMBER` per bucket that overlaps the window
and marked with one `SADD`: two writes per chunk instead of one `SET ... EX` per message,
which cost Redis as much as the `XADD` itself (see docs/durability.md). Each bucket expires
a window after it ends, so an id is remembered for at least the window and at most
a quarter more. The keys share the stream's hash tag: on a Redis Cluster, one slot.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Sequence
from typing import Any

import hiredis
from redis.exceptions import ResponseError

from gateway.constants import dedupe_prefix
from gateway.store.entry import Entry
from gateway.store.resp import RespConnection, command

SCRIPT = """
-- KEYS[1]: the stream; KEYS[2]: the prefix of its dedupe sets (same hash tag)
-- ARGV[1]: the window in seconds (0: no dedupe); ARGV[2]: the bucket's length in seconds
-- ARGV[3i], ARGV[3i + 1], ARGV[3i + 2]: data, source and member of entry i (from 1)
local window = tonumber(ARGV[1])
local count = (#ARGV - 2) / 3
if window == 0 then
  for i = 1, count do
    redis.call('XADD', KEYS[1], '*', 'data', ARGV[3 * i], 'source', ARGV[3 * i + 1])
  end
  return count
end
local span = tonumber(ARGV[2])
local now = tonumber(redis.call('TIME')[1])
local current = math.floor(now / span)
local members = {}
for i = 1, count do members[i] = ARGV[3 * i + 2] end
local seen = {}
for bucket = math.floor((now - window) / span), current do
  local found = redis.call('SMISMEMBER', KEYS[2] .. bucket, unpack(members))
  for i = 1, count do
    if found[i] == 1 then seen[members[i]] = true end
  end
end
local added = {}
local failed = nil
for i = 1, count do
  local member = members[i]
  if not seen[member] then
    seen[member] = true  -- the same id twice in one chunk
    -- XADD before marking: if it fails (e.g. out of memory) no member claims an entry
    -- that is not in the stream; the ones added before it are still marked
    local id = redis.pcall('XADD', KEYS[1], '*', 'data', ARGV[3 * i], 'source', ARGV[3 * i + 1])
    if type(id) == 'table' and id.err then
      failed = id
      break
    end
    added[#added + 1] = member
  end
end
if #added > 0 then
  local key = KEYS[2] .. current
  redis.call('SADD', key, unpack(added))
  redis.call('EXPIREAT', key, (current + 1) * span + window)
end
if failed then return failed end
return #added
"""
SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
_SHA = SHA.encode()

CHUNK = 256
"""Entries per script call: a call blocks Redis while it runs, so keep each one short."""

BUCKETS_PER_WINDOW = 4
"""A window is checked in this many buckets (plus the current one's remainder)."""


def bucket_seconds(window: int) -> int:
    """The length of a dedupe bucket for `window` (at least a second)."""
    return max(1, -(-window // BUCKETS_PER_WINDOW))


class Writer:
    """Adds entries to their streams, skipping recent duplicates, in one pipeline per call.

    It talks to Redis over one lean pipelined connection (`gateway.store.resp`): the hot path's
    cost per message is mostly here. Several calls may be in flight on it at once.
    """

    def __init__(self, url: str, window: int, connect_timeout: float) -> None:
        self._url = url
        self._window = b"%d" % window
        self._span = b"%d" % bucket_seconds(window)
        self._connect_timeout = connect_timeout
        self._connection: RespConnection | None = None
        self._connecting = asyncio.Lock()

    def write(self, entries: Sequence[Entry]) -> Awaitable[int]:
        """Add `entries` (in order per stream); the number added, duplicates left out.

        On an open connection the pipeline is sent before this returns (the committer
        relies on it), and the awaitable only waits for the replies.

        The awaitable raises `ResponseError` when Redis refuses a part, `OSError` when the
        connection fails; parts may have been added then, and writing all of it again adds
        none of them twice.
        """
        calls = self._calls(entries)
        connection = self._open_connection()
        if connection is None:
            return self._added(calls, self._run(calls))  # connects first
        sent = connection.send(b"".join(calls), len(calls))
        return self._added(calls, connection.replies(sent))

    async def _added(self, calls: list[bytes], replies: Awaitable[list[Any]]) -> int:
        results = await replies
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
            keys = (stream.encode(), dedupe_prefix(stream).encode())
            for start in range(0, len(group), CHUNK):
                args = [self._window, self._span]
                for entry in group[start : start + CHUNK]:
                    source = entry.source.encode()
                    args += (entry.data, source, b"%s:%s" % (source, entry.message_id.encode()))
                calls.append(command(b"EVALSHA", _SHA, b"2", *keys, *args))
        return calls

    async def _run(self, calls: list[bytes]) -> list[Any]:
        connection = await self._connect()
        return await connection.execute(b"".join(calls), len(calls))

    async def _connect(self) -> RespConnection:
        connection = self._open_connection()
        if connection is not None:
            return connection
        async with self._connecting:
            connection = self._open_connection()
            if connection is None:
                connection = await RespConnection.open(self._url, self._connect_timeout)
                self._connection = connection
            return connection

    def _open_connection(self) -> RespConnection | None:
        """The connection, unless there is none yet or it failed."""
        connection = self._connection
        return None if connection is None or connection.closed else connection
