"""Adding entries to their streams at most once per `messageId` and source.

Clients retry with the same `messageId` when an answer is lost, and the spool may replay
an entry Redis took after all (a timeout is not a refusal). A Lua script adds an entry
only if its key `gateway:dedupe:{n}:<source>:<messageId>` does not exist, and then sets it
to expire after the window: the check and the `XADD` are one atomic step, run by
`EVALSHA` in the same pipeline as everything else, so there is no extra round trip. The
key shares the stream's hash tag, so on a Redis Cluster both are in one slot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from gateway.constants import dedupe_key
from gateway.ingest import Entry

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

CHUNK = 256
"""Entries per script call: a call blocks Redis while it runs, so keep each one short."""


class Writer:
    """Adds entries to their streams, skipping recent duplicates, in one pipeline per call."""

    def __init__(self, redis: Redis, window: int) -> None:
        self._redis = redis
        self._window = window

    async def write(self, entries: Sequence[Entry]) -> int:
        """Add `entries` (in order per stream); the number added, duplicates left out.

        Raises what Redis raises (`RedisError`, `OSError`) when any part fails; parts may
        have been added then, and writing all of it again adds none of them twice.
        """
        calls = list(self._calls(entries))
        results = await self._run(calls)
        missing = [
            call
            for call, result in zip(calls, results, strict=True)
            if isinstance(result, NoScriptError)
        ]
        if missing:  # a restarted or failed-over server has forgotten the script
            await self._redis.script_load(SCRIPT)
            results = [r for r in results if not isinstance(r, NoScriptError)]
            results += await self._run(missing)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return sum(int(result) for result in results)

    def _calls(self, entries: Sequence[Entry]) -> list[list[Any]]:
        by_stream: dict[str, list[Entry]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry)
        calls: list[list[Any]] = []
        for stream, group in by_stream.items():
            for start in range(0, len(group), CHUNK):
                chunk = group[start : start + CHUNK]
                keys = [dedupe_key(stream, e.source, e.message_id) for e in chunk]
                args: list[Any] = [self._window]
                for entry in chunk:
                    args += (entry.data, entry.source)
                calls.append([1 + len(chunk), stream, *keys, *args])
        return calls

    async def _run(self, calls: list[list[Any]]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for call in calls:
            pipe.evalsha(SHA, *call)
        return list(await pipe.execute(raise_on_error=False))
