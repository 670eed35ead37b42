"""The gateway's own Prometheus metrics, into which the hot path's tally is pushed in bulk.

A request adds to plain integers in a `Tally` (`gateway.ops.tally`); `Metrics.push` moves
what was added into `prometheus_client` counters and histograms once a second, before
each scrape, and at shutdown. With `--workers N` those metrics live in
`prometheus_client`'s multiprocess files (see `gateway.ops.multiprocess`), where every
increment is a locked write to a memory-mapped file (1-2 µs): pushing once a second
instead of once per request keeps that off the hot path. The price: a scrape may miss
up to a second of the other processes' counts, never any count for good.

What is read at scrape time instead of counted (stream lengths, group lag, the spool on
disk) is in `gateway.store.gauges`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.ops import tasks
from gateway.ops.bulk_histogram import BulkHistogram
from gateway.ops.tally import FLUSH_BUCKETS, LATENCY_BUCKETS, Tally

log = logging.getLogger(__name__)

PUSH_INTERVAL = 1.0
"""Seconds between pushes of the tally into the Prometheus metrics."""


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
        self.dropped = Counter(
            "gateway_messages_dropped",
            "Messages answered as accepted but dropped by a regulation, by reason: "
            "suppressed or no_track (docs/regulations.md).",
            ["reason"],
            registry=r,
        )
        self.policy_drops = Counter(
            "gateway_messages_policy_dropped",
            "Messages answered 200 but not stored, by source and policy (rate_limit).",
            ["source", "policy"],
            registry=r,
        )
        self.latency = BulkHistogram(
            "gateway_enqueue_seconds",
            "Seconds from handing a request's messages to the committer until durable.",
            LATENCY_BUCKETS,
            registry=r,
        )
        self.flush_sizes = BulkHistogram(
            "gateway_flush_entries",
            "Entries per Redis pipeline (XADDs through the dedupe script) or spool write.",
            FLUSH_BUCKETS,
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
        if tally.dropped:
            dropped, tally.dropped = tally.dropped, {}
            for reason, count in dropped.items():
                self.dropped.labels(reason).inc(count)
        if tally.policy_drops:
            drops, tally.policy_drops = tally.policy_drops, {}
            for (source, policy), count in drops.items():
                self.policy_drops.labels(source, policy).inc(count)
        if tally.redis_errors:
            errors, tally.redis_errors = tally.redis_errors, {}
            for kind, count in errors.items():
                self.redis_errors.labels(kind).inc(count)
        if tally.sdk_metrics:
            self.sdk_metrics.inc(tally.sdk_metrics)
            tally.sdk_metrics = 0
        self.latency.add(*tally.latency.take())
        self.flush_sizes.add(*tally.flush_sizes.take())
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
