"""The tracking plans' upkeep: the rejected stream trimmed after blocked messages, once a
second, off the hot path (docs/tracking-plans.md, "Blocked messages")."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from gateway.constants import REJECTED_STREAM
from gateway.ingest.plan_enforce import PlanCounts
from gateway.ingest.plan_upkeep import PlanUpkeep
from gateway.ingest.tracking_plan import Violation
from gateway.store import rejected


async def test_the_rejected_stream_is_trimmed_only_after_messages_were_blocked(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rejected, "MAXLEN", 100)
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(1000):
            pipe.xadd(REJECTED_STREAM, {"data": b"{}", "source": str(n)})
        await pipe.execute()
    counts = PlanCounts()
    registry = CollectorRegistry()
    upkeep = PlanUpkeep(counts, registry)
    await upkeep.tick(redis)
    assert await redis.xlen(REJECTED_STREAM) == 1000  # nothing blocked: no call at all
    counts.block("web", "Order Completed", Violation("$.properties.total", "wrong", "type"))
    await upkeep.tick(redis)
    assert await redis.xlen(REJECTED_STREAM) <= 200  # `~`: whole stream nodes of 100
    labels = {"source": "web", "event": "Order Completed"}
    assert registry.get_sample_value("gateway_plan_blocked_total", labels) == 1
