"""Rate limits shared by every gateway process: a token bucket per caller, kept in Redis.

A Lua script refills a caller's bucket by the time elapsed on the Redis server's clock,
gives each check the tokens it asks for if there are that many (all or none), and says
what is left, so a refused check knows how long to wait. The bucket lives in Redis, so
`--workers` processes and several gateway hosts share one limit, and only the server's
clock is read, so the hosts' clocks need not agree. An idle bucket expires once it would
be full again.

Checks are grouped like commits (see `gateway.store.committer`): the requests that arrive in
one turn of the event loop share one write to Redis, one script call per caller listing
the tokens each of that caller's checks wants (on one node or a cluster, see
`gateway.store.ratelimit_script`). Under load that is far fewer script calls than requests.

A fast limit is not asked of Redis for every check: each process takes its tokens in leases,
a hundredth of a second of the rate divided between the processes (`--workers`), and spends
them without a round trip, asking for the next lease in the background once half is spent.
A request far under its limit then costs a dict lookup. Leases are taken only when one is at
least 2 tokens (a rate of 200/s on one process, 400/s on two), and at most a quarter of the
burst divided between the processes: slower limits are checked in Redis each time, exactly.
What a lease costs in accuracy: tokens a process has leased and not spent are not available
to the others, and are spent later than they were taken, so at any moment at most one and a
half leases a process (15 ms of the rate in all) are let through early or held back; the
shared bucket is never overdrawn.

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

from gateway.constants import RATELIMIT_PREFIX
from gateway.store.ratelimit_script import Call, ScriptRunner, open_runner

log = logging.getLogger(__name__)


PROBE_INTERVAL = 1.0
"""Seconds the limiter keeps to its local buckets after Redis failed, before trying again."""
_MAX_LOCAL_BUCKETS = 10_000
"""Local buckets kept during an outage, and leases; past that they are all forgotten (each
bucket refills; a lease's tokens are lost, which only ever holds back)."""
LEASE_SECONDS = 0.01
"""A lease is this long at the limit's rate, divided between the processes."""
MIN_LEASE = 2
"""Smaller leases are not taken: the limit is checked in Redis each time."""


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


ALLOWED = Decision(True)


class _Lease:
    """Tokens this process took from a bucket ahead of its checks."""

    __slots__ = ("limit", "refilling", "size", "tokens")

    def __init__(self, limit: Limit, size: int) -> None:
        self.limit = limit
        self.size = size
        self.tokens = 0
        self.refilling = False


class _Waiting:
    """The checks of one caller waiting for the next flush, the tokens each wants, and the
    lease to take after them, if any."""

    __slots__ = ("counts", "futures", "lease", "limit")

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self.futures: list[asyncio.Future[Decision]] = []
        self.counts: list[int] = []
        self.lease: _Lease | None = None


class RateLimiter:
    """Token buckets in Redis, shared by every process; local ones while Redis is away."""

    def __init__(self, url: str, timeout: float, processes: int) -> None:
        self._url = url
        self._timeout = timeout
        self._processes = max(1, processes)
        self._runner: ScriptRunner | None = None
        self._opening = asyncio.Lock()
        self._pending: dict[bytes, _Waiting] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._down_until = 0.0
        self._degraded = False
        self._local: dict[str, list[float]] = {}
        self._leases: dict[str, _Lease] = {}
        self.flushes = 0
        """Writes to Redis so far: under load far fewer than checks."""
        self.fallbacks = 0
        """Decisions taken locally because Redis did not answer."""

    async def check(self, name: str, limit: Limit, count: int = 1) -> Decision:
        """Take `count` tokens (at most the burst) from `name`'s bucket, all or none, or say
        how long until there is one."""
        count = min(count, limit.burst)
        if self.take(name, limit, count):
            return ALLOWED
        if self._is_up():
            future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
            waiting = self._waiting(name, limit)
            waiting.futures.append(future)
            waiting.counts.append(count)
            self._lease_after(waiting, name, limit)
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
        return self._local_check(name, limit, count)

    def take(self, name: str, limit: Limit, count: int) -> bool:
        """Spend `count` tokens of this process's lease on `name`'s bucket, if it holds that
        many: no round trip. False: ask `check`."""
        lease = self._leases.get(name)
        if lease is None or lease.tokens < count or lease.limit != limit:
            return False
        lease.tokens -= count
        if lease.tokens * 2 < lease.size and not lease.refilling and self._is_up():
            self._lease_after(self._waiting(name, limit), name, limit)  # the next, ahead
        return True

    async def close(self) -> None:
        """Wait for the flushes in flight, then close the connections."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.close()

    def _is_up(self) -> bool:
        return time.monotonic() >= self._down_until

    def _waiting(self, name: str, limit: Limit) -> _Waiting:
        """The checks of `name` waiting for the next flush, which this schedules if need be."""
        key = bucket_key(name).encode()
        waiting = self._pending.get(key)
        if waiting is None:
            if not self._pending:
                asyncio.get_running_loop().call_soon(self._start_flush)
            # The first check of a flush sets the limit: a caller has one limit.
            waiting = self._pending[key] = _Waiting(limit)
        return waiting

    def _lease_after(self, waiting: _Waiting, name: str, limit: Limit) -> None:
        """Take a lease of `name`'s bucket after `waiting`'s checks, if its limit is fast
        enough for one and none is being taken."""
        if waiting.lease is not None or waiting.limit != limit:
            return
        lease = self._leases.get(name)
        if lease is None or lease.limit != limit:
            size = min(
                int(limit.rate * LEASE_SECONDS / self._processes),
                limit.burst // (4 * self._processes),
            )
            if size < MIN_LEASE:
                return
            if len(self._leases) >= _MAX_LOCAL_BUCKETS:
                self._leases.clear()
            lease = self._leases[name] = _Lease(limit, size)
        if not lease.refilling and lease.tokens * 2 < lease.size:  # at most 1.5 leases held
            lease.refilling = True
            waiting.lease = lease

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
                (waiting, int(reply[0]) / 1000, reply[1:])
                for waiting, reply in zip(pending.values(), replies, strict=True)
            ]
        except Exception as exc:  # every waiter must hear of it, whatever it was
            for waiting in pending.values():
                _lease_taken(waiting, False)
                for future in waiting.futures:
                    if not future.done():
                        future.set_exception(exc)
            if not any(waiting.futures for waiting in pending.values()):
                self._went_down(exc)  # only leases were asked for: nobody else will say
            return
        except BaseException:
            for waiting in pending.values():
                _lease_taken(waiting, False)
                for future in waiting.futures:
                    future.cancel()
            raise
        for waiting, left, granted in decisions:
            if waiting.lease is not None:
                _lease_taken(waiting, bool(granted[-1]))
                granted = granted[:-1]
            rate = waiting.limit.rate
            for future, count, allowed in zip(
                waiting.futures, waiting.counts, granted, strict=True
            ):
                if not future.done():
                    future.set_result(
                        Decision(True)
                        if allowed
                        else Decision(False, _seconds((count - left) / rate))
                    )

    async def _run(self, pending: dict[bytes, _Waiting]) -> list[Any]:
        calls: list[Call] = [
            (
                key,
                repr(float(waiting.limit.rate)).encode(),
                b"%d" % waiting.limit.burst,
                *(b"%d" % count for count in waiting.counts),
                *((b"%d" % waiting.lease.size,) if waiting.lease is not None else ()),
            )
            for key, waiting in pending.items()
        ]
        runner = self._runner
        if runner is None:
            async with self._opening:
                if self._runner is None:  # decided once Redis answers: one node or a cluster
                    self._runner = await open_runner(self._url, self._timeout)
                runner = self._runner
        return await runner.run(calls)

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

    def _local_check(self, name: str, limit: Limit, count: int = 1) -> Decision:
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
        count = min(count, int(burst))
        if tokens >= count:
            bucket[0] = tokens - count
            return Decision(True)
        bucket[0] = tokens
        return Decision(False, _seconds((1 - tokens) / rate))


def _lease_taken(waiting: _Waiting, granted: bool) -> None:
    """The lease asked for after `waiting`'s checks came back (or did not: not `granted`)."""
    lease = waiting.lease
    if lease is not None:
        lease.refilling = False
        if granted:
            lease.tokens += lease.size


def _seconds(wait: float) -> int:
    """`Retry-After` is in whole seconds: round up, and never say 0."""
    return max(1, math.ceil(wait))
