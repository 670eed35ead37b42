"""The admin API's event lookup in front of a three-master Redis Cluster: each message is
found in its partition, whichever master holds it; a refusal is named."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import RedisCluster

from tests.helpers.cluster import PARTITIONS, read_partitions, track
from tests.helpers.gateway import MakeClient, admin_of


async def test_each_message_is_found_in_its_partition_on_a_cluster(
    cluster: RedisCluster, make_gateway: MakeClient
) -> None:
    client = await make_gateway(partitions=PARTITIONS)
    admin = admin_of(client)
    body = {"batch": [track(n) for n in range(40)]}
    assert (await client.post("/v1/batch", json=body)).status == 200
    refused = await client.post("/v1/track", json={"event": "E", "messageId": "m-refused"})
    assert refused.status == 400

    found = await read_partitions(cluster, PARTITIONS)
    where = {m: n for n, partition in found.items() for m in partition}
    assert len(set(where.values())) > 1  # spread over partitions, so over masters
    for n in range(40):
        answer = await admin.get(f"/v1/events/m-{n}")
        assert answer.status == 200, await answer.text()
        event = await answer.json()
        assert event["partition"] == where[f"m-{n}"]
        assert event["message"]["messageId"] == f"m-{n}"
        assert event["route"] == "/v1/batch"

    deadline = time.monotonic() + 10
    while (answer := await admin.get("/v1/events/m-refused")).status != 200:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert "userId or anonymousId" in (await answer.json())["refused"]
    assert (await admin.get("/v1/deliveries")).status == 200
