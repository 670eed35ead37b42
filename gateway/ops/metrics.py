"""The gateway's own metrics: counted cheaply on the hot path, pushed to Prometheus in bulk.

A request adds to plain integers in a `Tally` (about 0.1 µs each); `Metrics.push` moves
what was added into `prometheus_client` counters and histograms once a second, before
each scrape, and at shutdown. With `--workers N` those metrics live in
`prometheus_client`'s multiprocess files (see `gateway.ops.multiprocess`), where every
increment is a locked write to a memory-mapped file (1-2 µs): pushing once a second
instead of once per request keeps that off the hot path. The price: a scrape may miss
up to a second of the other processes' counts, never any count for good.

What is read at scrape time instead of counted (stream lengths, group lag, the spool on
disk) is in `gateway.http.scrape`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.exceptions import ResponseError

from gateway.errors import INVALID_WRITE_KEY, MALFORMED_HTTP, ApiError
from gateway.ops import tasks

log = logging.getLogger(__name__)

PUSH_INTERVAL = 1.0
"""Seconds between pushes of the tally into the Prometheus metrics."""

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, float("inf"),
)  # fmt: skip
"""Seconds from handing messages to the committer until they are durable."""
FLUSH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, float("inf"))
"""Entries per pipeline (or spool write)."""

REASONS = {
    INVALID_WRITE_KEY: "write_key",
    "Invalid JSON": "malformed",
    "Invalid UTF-8": "malformed",
    "Invalid batch": "malformed",
    "A message must be a JSON object": "malformed",
    "Empty body": "malformed",
    "Invalid form body": "malformed",
    "Missing data": "malformed",
    "Invalid query parameter": "malformed",
    MALFORMED_HTTP: "malformed",
    "Message nested too deeply": "too_deep",
    "Invalid message": "invalid",
}
"""The reason label of a refusal, by the error's message; see `reason_of`."""


def reason_of(error: ApiError) -> str:
    """A short, bounded label for why `error` refused a message (never its free text)."""
    if error.status == 413:
        return "too_large"
    if error.status == 415:
        return "encoding"
    if error.status in (401, 403):
        return "auth"  # a token without rights (Intilery)
    if error.status == 429:
        return "rate_limited"
    if error.status >= 500:
        return "unavailable"
    reason = REASONS.get(error.message)
    if reason is None and error.message.startswith("Invalid ") and error.message.endswith(" body"):
        reason = "malformed"  # a gzip or deflate body that does not inflate
    return reason or "invalid"


class _Buckets:
    """A histogram as plain counts, for `Histogram` to take in bulk."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * len(bounds)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def drain_into(self, histogram: Histogram) -> None:
        # prometheus_client has no bulk observe: add to its (non-cumulative) bucket values
        # and sum directly. tests/test_metrics.py checks the exposition these make.
        for index, count in enumerate(self.counts):
            if count:
                histogram._buckets[index].inc(count)
                self.counts[index] = 0
        if self.total:
            histogram._sum.inc(self.total)
            self.total = 0.0


class Tally:
    """What this process counted since the last push: plain numbers, cheap to add to."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], dict[int, int]] = {}
        """(route, method) -> status -> answers."""
        self.accepted_redis = 0
        self.accepted_spool = 0
        self.duplicates = 0
        self.rejected: dict[str, int] = {}
        self.redis_errors: dict[str, int] = {}
        self.sdk_metrics = 0
        """Usage-metric series analytics.js posted to `/v1/m`."""
        self.latency = _Buckets(LATENCY_BUCKETS)
        self.flush_sizes = _Buckets(FLUSH_BUCKETS)

    def route(self, route: str, method: str) -> dict[int, int]:
        """The answers of `method` on `route`, by status, for the caller to add to."""
        return self.requests.setdefault((route, method), {})

    def refused(self, error: ApiError, messages: int = 1) -> bool:
        """Count `messages` refused with `error`; whether it counted them.

        Not a 404 or 405 (a wrong route refuses no message), nor a 503 (the committer
        counts those, with the number of messages it could not store).
        """
        if error.status >= 500 or error.status in (404, 405):
            return False
        self.reject(reason_of(error), messages)
        return True

    def refused_items(self, errors: Iterable[tuple[int, ApiError]]) -> None:
        """The refused items of a batch."""
        for _, error in errors:
            self.refused(error)

    def reject(self, reason: str, messages: int) -> None:
        """`messages` refused for `reason`."""
        self.rejected[reason] = self.rejected.get(reason, 0) + messages

    def redis_error(self, exc: BaseException) -> None:
        """A Redis operation that failed with `exc`."""
        kind = _error_kind(exc)
        self.redis_errors[kind] = self.redis_errors.get(kind, 0) + 1


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ResponseError):
        return "refused"  # Redis answered with an error (out of memory, read-only, ...)
    return "connection"


class Metrics:
    """The Prometheus side: the metrics a `Tally` is pushed into, in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.tally = Tally()
        self.replayed: Callable[[], int] = lambda: 0
        """How many entries replay has sent so far (it counts them itself)."""
        self._replayed_pushed = 0
        r = self.registry
        self.requests = Counter(
            "gateway_http_requests",
            "HTTP answers by route (the path as registered), method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.accepted = Counter(
            "gateway_messages_accepted",
            "Messages made durable and answered with success, by where: redis or spool.",
            ["to"],
            registry=r,
        )
        self.duplicates = Counter(
            "gateway_messages_duplicate",
            "Accepted messages Redis already had (same source and messageId in the window).",
            registry=r,
        )
        self.rejected = Counter(
            "gateway_messages_rejected",
            "Messages refused, by reason; a batch refused as a whole counts once.",
            ["reason"],
            registry=r,
        )
        self.latency = Histogram(
            "gateway_enqueue_seconds",
            "Seconds from handing a request's messages to the committer until durable.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.flush_sizes = Histogram(
            "gateway_flush_entries",
            "Entries per Redis pipeline (XADDs through the dedupe script) or spool write.",
            buckets=FLUSH_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            "gateway_redis_errors",
            "Failed Redis writes, by kind: timeout, connection or refused.",
            ["kind"],
            registry=r,
        )
        self.replayed_total = Counter(
            "gateway_spool_replayed",
            "Spooled entries replay sent to Redis (duplicates it drops included).",
            registry=r,
        )
        self.sdk_metrics = Counter(
            "gateway_sdk_metrics",
            "Usage-metric series analytics.js posted to /v1/m (counted, never stored).",
            registry=r,
        )
        self.processes = Gauge(
            "gateway_processes",
            "Gateway processes serving (with --workers N: the live ones).",
            registry=r,
            multiprocess_mode="livesum",
        )

    def push(self) -> None:
        """Move what the tally counted into the Prometheus metrics."""
        tally = self.tally
        for (route, method), by_status in tally.requests.items():
            if by_status:
                for status, count in by_status.items():
                    self.requests.labels(route, method, str(status)).inc(count)
                by_status.clear()  # in place: the route's handler holds this dict
        if tally.accepted_redis:
            self.accepted.labels("redis").inc(tally.accepted_redis)
            tally.accepted_redis = 0
        if tally.accepted_spool:
            self.accepted.labels("spool").inc(tally.accepted_spool)
            tally.accepted_spool = 0
        if tally.duplicates:
            self.duplicates.inc(tally.duplicates)
            tally.duplicates = 0
        if tally.rejected:
            rejected, tally.rejected = tally.rejected, {}
            for reason, count in rejected.items():
                self.rejected.labels(reason).inc(count)
        if tally.redis_errors:
            errors, tally.redis_errors = tally.redis_errors, {}
            for kind, count in errors.items():
                self.redis_errors.labels(kind).inc(count)
        if tally.sdk_metrics:
            self.sdk_metrics.inc(tally.sdk_metrics)
            tally.sdk_metrics = 0
        tally.latency.drain_into(self.latency)
        tally.flush_sizes.drain_into(self.flush_sizes)
        replayed = self.replayed()
        if replayed > self._replayed_pushed:
            self.replayed_total.inc(replayed - self._replayed_pushed)
            self._replayed_pushed = replayed

    @contextlib.asynccontextmanager
    async def pushing(self, interval: float = PUSH_INTERVAL) -> AsyncIterator[None]:
        """Push every `interval` seconds while inside, and once more on the way out."""
        self.processes.set(1)
        try:
            async with tasks.running(self._push_every(interval)):
                yield
        finally:
            self.push()
            self.processes.set(0)

    async def _push_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.push()
            except Exception:  # a metrics bug must not stop the pushes for good
                log.exception("metrics: push failed")
