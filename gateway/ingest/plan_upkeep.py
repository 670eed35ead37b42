"""What tracking plans need besides the hot path, once a second: their counts pushed into
the Prometheus metrics, and the rejected stream trimmed after blocked messages.

Blocked messages go to `gateway:rejected` through the committer like any entry, so the
hot path pays no Redis call of its own for them; the stream is trimmed here, within a
second, to about `rejected.MAXLEN` entries (docs/tracking-plans.md has the bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, Counter

from gateway.ingest.plan_enforce import PlanCounts
from gateway.ops import tasks
from gateway.store import rejected
from gateway.store.redis_client import AnyRedis

log = logging.getLogger(__name__)

INTERVAL = 1.0
"""Seconds between two pushes (and trims)."""


class PlanMetrics:
    """The plans' counters, pushed from a `PlanCounts`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.violations = Counter(
            "gateway_plan_violations",
            "Tracking-plan violations, by source, event (planned name, (unplanned), or the "
            "message type) and kind (the JSON Schema keyword, unplanned_event, "
            "unplanned_property).",
            ["source", "event", "kind"],
            registry=registry,
        )
        self.blocked = Counter(
            "gateway_plan_blocked",
            "Messages a tracking plan blocked (answered as accepted, kept in gateway:rejected).",
            ["source", "event"],
            registry=registry,
        )

    def push(self, counts: PlanCounts) -> None:
        """Move what `counts` counted into the counters."""
        if counts.violations:
            violations, counts.violations = counts.violations, {}
            for labels, count in violations.items():
                self.violations.labels(*labels).inc(count)
        if counts.blocked:
            blocked, counts.blocked = counts.blocked, {}
            for (source, event), count in blocked.items():
                self.blocked.labels(source, event).inc(count)


class PlanUpkeep:
    """Pushes the counts and trims the rejected stream while the app runs."""

    def __init__(self, counts: PlanCounts, registry: CollectorRegistry) -> None:
        self.counts = counts
        self.metrics = PlanMetrics(registry)
        self.reporter = rejected.Reporter()
        self._blocked = 0

    @contextlib.asynccontextmanager
    async def running(self, redis: AnyRedis, interval: float = INTERVAL) -> AsyncIterator[None]:
        """Every `interval` seconds while inside, and once more on the way out."""
        try:
            async with tasks.running(self._every(redis, interval)):
                yield
        finally:
            self.metrics.push(self.counts)

    async def tick(self, redis: AnyRedis) -> None:
        """One round: push, and trim when messages were blocked since the last."""
        self.metrics.push(self.counts)
        blocked = self.counts.blocked_total
        if blocked != self._blocked:
            self.reporter.note(blocked - self._blocked, self.counts.latest)
            self._blocked = blocked
            await rejected.trim(redis)

    async def _every(self, redis: AnyRedis, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick(redis)
            except Exception:  # a bug here must not stop the pushes for good
                log.exception("tracking plans: upkeep failed")
