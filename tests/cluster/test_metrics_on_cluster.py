"""`GET /metrics` in front of a three-master cluster: lengths and lag of every partition."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import RedisCluster

from gateway.constants import events_key
from tests.helpers.gateway import MakeClient, admin_of
from tests.helpers.metrics import parse, total, value

PARTITIONS = 8


@pytest.mark.slow
async def test_the_scrape_reads_every_partition_on_its_master(
    cluster: RedisCluster, make_gateway: MakeClient
) -> None:
    client = await make_gateway(partitions=PARTITIONS)
    for n in range(40):
        message: dict[str, Any] = {"userId": f"user-{n}", "event": "E", "messageId": f"m{n}"}
        assert (await client.post("/v1/track", json=message)).status == 200
    for n in range(PARTITIONS):
        await cluster.xgroup_create(events_key(n), "g", id="0", mkstream=True)
    samples = parse(await (await admin_of(client).get("/metrics")).text())
    assert value(samples, "gateway_redis_up") == 1
    assert value(samples, "gateway_messages_accepted_total", to="redis") == 40
    assert total(samples, "gateway_stream_length") == 40
    lengths = [
        value(samples, "gateway_stream_length", stream=events_key(n)) for n in range(PARTITIONS)
    ]
    assert lengths == [await cluster.xlen(events_key(n)) for n in range(PARTITIONS)]
    assert total(samples, "gateway_group_lag") == 40
    assert value(samples, "gateway_dead_letters", group="g") == 0
