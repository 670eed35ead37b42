"""Rate limits shared by every gateway process: a token bucket per caller, kept in Redis.

A Lua script refills a caller's bucket by the time elapsed on the Redis server's clock,
takes the tokens asked for if there are that many, and says how long to wait for the
next one. The bucket lives in Redis, so `--workers` processes and several gateway hosts
share one limit, and only the server's clock is read, so the hosts' clocks need not
agree. An idle bucket expires once it would be full again.

Checks are grouped like commits (see `gateway.committer`): the requests that arrive in
one turn of the event loop share one write to Redis, one script call per caller asking
for as many tokens as that caller has requests, on a lean pipelined connection (see
`gateway.resp`). Under load that is far fewer script calls, and far fewer AOF fsyncs on a
server that fsyncs every write, than one per request.

When Redis does not answer, the gateway still accepts messages (they go to the spool), so
limiting must not fail closed: the limiter falls back to buckets in the process, with the
limit divided by the number of processes, and tries Redis again after a second.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import time
from typing import Any, NamedTuple

import hiredis

from gateway.constants import RATELIMIT_PREFIX
from gateway.resp import RespConnection, RespError, command

log = logging.getLogger(__name__)

SCRIPT = """
-- KEYS[1]: the caller's bucket, a hash {tokens, at}; ARGV[1]: tokens per second;
-- ARGV[2]: the bucket's size (the burst); ARGV[3]: tokens wanted.
-- Returns {tokens granted, ms until one more token} (0 ms when all were granted).
if redis.replicate_commands then redis.replicate_commands() end  -- TIME, Redis < 5
-- A bucket is worth nothing after a restart or failover (it starts full again): keeping
-- its writes out of the AOF and replication spares an fsync per call on a server that
-- fsyncs every write.
redis.set_repl(redis.REPL_NONE)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate / 1000)
end
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
local wait = 0
if granted < want then
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {granted, wait}
"""
_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest().encode()

PROBE_INTERVAL = 1.0
"""Seconds the limiter keeps to its local buckets after Redis failed, before trying again."""
_MAX_LOCAL_BUCKETS = 10_000
"""Local buckets kept during an outage; past that they are all forgotten (each refills)."""


class Limit(NamedTuple):
    """`rate` requests per second on average, up to `burst` at once."""

    rate: float
    burst: int


class Decision(NamedTuple):
    """Whether a request may pass; if not, the whole seconds to wait (`Retry-After`)."""

    allowed: bool
    retry_after: int = 0


@functools.lru_cache(maxsize=4096)
def bucket_key(name: str) -> str:
    """The Redis key of `name`'s bucket. Hashed: names hold credentials (tokens), and
    credentials are never stored in Redis."""
    return f"{RATELIMIT_PREFIX}:{hashlib.sha256(name.encode()).hexdigest()[:40]}"


class _Waiting:
    """The checks of one caller waiting for the next flush."""

    __slots__ = ("futures", "limit")

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self.futures: list[asyncio.Future[Decision]] = []


class RateLimiter:
    """Token buckets in Redis, shared by every process; local ones while Redis is away."""

    def __init__(self, url: str, timeout: float, processes: int) -> None:
        self._url = url
        self._timeout = timeout
        self._processes = max(1, processes)
        self._connection: RespConnection | None = None
        self._connecting = asyncio.Lock()
        self._pending: dict[bytes, _Waiting] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._down_until = 0.0
        self._degraded = False
        self._local: dict[str, list[float]] = {}
        self.flushes = 0
        """Writes to Redis so far: under load far fewer than checks."""
        self.fallbacks = 0
        """Decisions taken locally because Redis did not answer."""

    async def check(self, name: str, limit: Limit) -> Decision:
        """Take one token from `name`'s bucket, or say how long until there is one."""
        if time.monotonic() >= self._down_until:
            future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
            key = bucket_key(name).encode()
            waiting = self._pending.get(key)
            if waiting is None:
                if not self._pending:
                    asyncio.get_running_loop().call_soon(self._start_flush)
                # The first check of a flush sets the limit: a caller has one limit.
                waiting = self._pending[key] = _Waiting(limit)
            waiting.futures.append(future)
            try:
                decision = await future
            except Exception as exc:  # Redis failed or timed out: never fail the request
                self._went_down(exc)
            else:
                if self._degraded:
                    log.info("rate limits are shared through Redis again")
                    self._degraded = False
                    self._local.clear()
                return decision
        self.fallbacks += 1
        return self._local_check(name, limit)

    async def close(self) -> None:
        """Wait for the flushes in flight, then close the connection."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._connection is not None:
            self._connection.close()

    def _start_flush(self) -> None:
        pending, self._pending = self._pending, {}
        task = asyncio.create_task(self._flush(pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, pending: dict[bytes, _Waiting]) -> None:
        self.flushes += 1
        try:
            async with asyncio.timeout(self._timeout):
                replies = await self._run(pending)
            decisions = [
                (waiting, int(granted), Decision(False, _seconds(wait_ms / 1000)))
                for waiting, (granted, wait_ms) in zip(pending.values(), replies, strict=True)
            ]
        except Exception as exc:  # every waiter must hear of it, whatever it was
            for waiting in pending.values():
                for future in waiting.futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        except BaseException:
            for waiting in pending.values():
                for future in waiting.futures:
                    future.cancel()
            raise
        for waiting, granted, refused in decisions:
            for index, future in enumerate(waiting.futures):
                if not future.done():
                    future.set_result(Decision(True) if index < granted else refused)

    async def _run(self, pending: dict[bytes, _Waiting]) -> list[Any]:
        calls = [
            (
                key,
                repr(float(waiting.limit.rate)).encode(),
                b"%d" % waiting.limit.burst,
                b"%d" % len(waiting.futures),
            )
            for key, waiting in pending.items()
        ]
        replies = await self._execute([command(b"EVALSHA", _SHA, b"1", *c) for c in calls])
        missing = [
            index
            for index, reply in enumerate(replies)
            if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT")
        ]
        if missing:  # a restarted or failed-over server has forgotten the script
            again = await self._execute(
                [command(b"EVAL", SCRIPT.encode(), b"1", *calls[index]) for index in missing]
            )
            for index, reply in zip(missing, again, strict=True):
                replies[index] = reply
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise RespError(f"the rate limit script failed: {reply}")
        return replies

    async def _execute(self, calls: list[bytes]) -> list[Any]:
        connection = self._connection
        if connection is None or connection.closed:
            async with self._connecting:
                if self._connection is None or self._connection.closed:
                    self._connection = await RespConnection.open(self._url, self._timeout)
                connection = self._connection
        return await connection.execute(b"".join(calls), len(calls))

    def _went_down(self, exc: BaseException) -> None:
        if not self._degraded:
            self._degraded = True
            log.warning(
                "rate limits fall back to this process (Redis: %s); each process allows "
                "1/%d of the limit until Redis answers",
                str(exc) or type(exc).__name__,
                self._processes,
            )
        self._down_until = time.monotonic() + PROBE_INTERVAL

    def _local_check(self, name: str, limit: Limit) -> Decision:
        # The same bucket as the script's, with this process's share of the limit.
        rate = limit.rate / self._processes
        burst = max(1.0, limit.burst / self._processes)
        now = time.monotonic()
        bucket = self._local.get(name)
        if bucket is None:
            if len(self._local) >= _MAX_LOCAL_BUCKETS:
                self._local.clear()
            bucket = self._local[name] = [burst, now]
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1:
            bucket[0] = tokens - 1
            return Decision(True)
        bucket[0] = tokens
        return Decision(False, _seconds((1 - tokens) / rate))


def _seconds(wait: float) -> int:
    """`Retry-After` is in whole seconds: round up, and never say 0."""
    return max(1, math.ceil(wait))
