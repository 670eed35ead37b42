"""The gateway in front of a three-master Redis Cluster: every message lands, once."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import RedisCluster

from gateway.constants import events_key
from gateway.http.app_keys import COMMITTER
from tests.helpers.cluster import PARTITIONS, Cluster, holders, read_partitions, track
from tests.helpers.gateway import MakeClient


@pytest.mark.slow
async def test_every_message_lands_once_and_partitions_spread_over_the_masters(
    cluster: RedisCluster, cluster_server: Cluster, make_gateway: MakeClient
) -> None:
    client = await make_gateway(partitions=PARTITIONS)
    singles = 500
    batches = 50
    per_batch = 50
    limit = asyncio.Semaphore(32)

    async def single(n: int) -> None:
        async with limit:
            response = await client.post("/v1/track", json=track(n))
            assert response.status == 200, await response.text()

    async def batch(b: int) -> None:
        start = singles + b * per_batch
        async with limit:
            body = {"batch": [track(n) for n in range(start, start + per_batch)]}
            response = await client.post("/v1/batch", json=body)
            assert response.status == 200, await response.text()

    await asyncio.gather(*(single(n) for n in range(singles)), *(batch(b) for b in range(batches)))
    total = singles + batches * per_batch

    found = await read_partitions(cluster, PARTITIONS)
    ids = [message_id for partition in found.values() for message_id in partition]
    assert len(ids) == total  # none missing, none twice
    assert set(ids) == {f"m-{n}" for n in range(total)}
    assert all(found.values()), "every partition got messages"
    held = holders(cluster_server)
    assert sorted(held) == sorted(events_key(n) for n in range(PARTITIONS))
    assert set(held.values()) == {0, 1, 2}
    assert client.app is not None
    assert client.app[COMMITTER].spool.empty  # all of it went straight to the cluster
    # One user's messages stay in one partition: ask again for a user, same partition.
    response = await client.post("/v1/track", json=track(0) | {"messageId": "again"})
    assert response.status == 200
    again = await read_partitions(cluster, PARTITIONS)
    assert [n for n, partition in again.items() if "again" in partition] == [
        n for n, partition in found.items() if "m-0" in partition
    ]


async def test_a_resent_message_is_not_added_twice_on_a_cluster(
    cluster: RedisCluster, cluster_server: Cluster, make_gateway: MakeClient
) -> None:
    # The explicit scheme: no question asked of the server.
    url = cluster_server.seed.replace("redis://", "redis+cluster://")
    client = await make_gateway(partitions=PARTITIONS, redis_url=url)
    body = {"batch": [track(n) for n in range(40)]}
    for _ in range(2):
        response = await client.post("/v1/batch", json=body)
        assert response.status == 200
    found = await read_partitions(cluster, PARTITIONS)
    ids = sorted(message_id for partition in found.values() for message_id in partition)
    assert ids == sorted(f"m-{n}" for n in range(40))


async def test_ready_asks_every_master(
    cluster: RedisCluster, cluster_server: Cluster, make_gateway: MakeClient
) -> None:
    client = await make_gateway()
    response = await client.get("/ready")
    assert response.status == 200
    assert (await response.json())["redis"] == "up"
    for index in (1, 2):  # not the node of the URL
        with cluster_server.client(index) as node:
            node.execute_command("CLIENT PAUSE", 1000, "ALL")  # answers nothing for 1 s
        response = await client.get("/ready")
        body = await response.json()
        assert body["redis"] == "down"
        assert response.status == 200  # the spool has room: still ready
        with cluster_server.client(index) as node:
            node.execute_command("CLIENT UNPAUSE")


async def test_a_master_that_does_not_answer_spools_and_replay_catches_up(
    cluster: RedisCluster, cluster_server: Cluster, make_gateway: MakeClient
) -> None:
    client = await make_gateway(partitions=PARTITIONS, redis_timeout=0.5)
    assert client.app is not None
    spool = client.app[COMMITTER].spool
    with cluster_server.client(1) as node:
        node.execute_command("CLIENT PAUSE", 1500, "WRITE")  # the writes wait: a timeout
    body = {"batch": [track(n) for n in range(60)]}
    response = await client.post("/v1/batch", json=body)
    assert response.status == 200  # durable in the spool
    assert not spool.empty
    for _ in range(300):  # bounded: 30 s at most
        if spool.empty:
            break
        await asyncio.sleep(0.1)
    assert spool.empty
    found = await read_partitions(cluster, PARTITIONS)
    ids = sorted(message_id for partition in found.values() for message_id in partition)
    assert ids == sorted(f"m-{n}" for n in range(60))  # the part that landed: not twice
