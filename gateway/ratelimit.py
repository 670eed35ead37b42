"""Rate limits shared by every gateway process: a token bucket per caller, kept in Redis.

Each request runs one Lua script (`EVALSHA`, one round trip on a lean pipelined
connection, see `gateway.resp`): it refills the caller's bucket by the time elapsed on
the Redis server's clock, takes a token if there is one, and says how long to wait if
not. The bucket lives in Redis, so `--workers` processes and several gateway hosts
share one limit, and the server's clock is the only one read, so the hosts' clocks need
not agree. An idle bucket expires once it would be full again.

When Redis does not answer, the gateway still accepts messages (they go to the spool), so
limiting must not fail closed: the limiter falls back to a bucket in the process, with
the limit divided by the number of processes, and tries Redis again after a second.
"""

from __future__ import annotations

import asyncio
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
-- ARGV[2]: the bucket's size (the burst). Returns {1, 0} to pass, {0, ms} to wait ms.
if redis.replicate_commands then redis.replicate_commands() end  -- TIME, Redis < 5
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate / 1000)
end
local allowed, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait}
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


def bucket_key(name: str) -> str:
    """The Redis key of `name`'s bucket. Hashed: names hold credentials (tokens), and
    credentials are never stored in Redis."""
    return f"{RATELIMIT_PREFIX}:{hashlib.sha256(name.encode()).hexdigest()[:40]}"


class RateLimiter:
    """Token buckets in Redis, shared by every process; local ones while Redis is away."""

    def __init__(self, url: str, timeout: float, processes: int) -> None:
        self._url = url
        self._timeout = timeout
        self._processes = max(1, processes)
        self._connection: RespConnection | None = None
        self._connecting = asyncio.Lock()
        self._down_until = 0.0
        self._degraded = False
        self._local: dict[str, list[float]] = {}
        self.fallbacks = 0
        """Decisions taken locally because Redis did not answer."""

    async def check(self, name: str, limit: Limit) -> Decision:
        """Take one token from `name`'s bucket, or say how long until there is one."""
        if time.monotonic() >= self._down_until:
            try:
                async with asyncio.timeout(self._timeout):
                    decision = await self._remote(bucket_key(name), limit)
            except (OSError, TimeoutError, RespError) as exc:
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
        """Close the connection."""
        if self._connection is not None:
            self._connection.close()

    async def _remote(self, key: str, limit: Limit) -> Decision:
        args = (key.encode(), repr(float(limit.rate)).encode(), b"%d" % limit.burst)
        reply = await self._run(command(b"EVALSHA", _SHA, b"1", *args))
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            # A restarted or failed-over server has forgotten the script: send it whole.
            reply = await self._run(command(b"EVAL", SCRIPT.encode(), b"1", *args))
        if isinstance(reply, hiredis.ReplyError):
            raise RespError(f"the rate limit script failed: {reply}")
        allowed, wait_ms = reply
        return Decision(True) if allowed else Decision(False, _seconds(wait_ms / 1000))

    async def _run(self, payload: bytes) -> Any:
        connection = self._connection
        if connection is None or connection.closed:
            async with self._connecting:
                if self._connection is None or self._connection.closed:
                    self._connection = await RespConnection.open(self._url, self._timeout)
                connection = self._connection
        (reply,) = await connection.execute(payload, 1)
        return reply

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
