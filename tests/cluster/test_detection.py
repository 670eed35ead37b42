"""Which `--redis-url` is a cluster, and the writer that follows from it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.asyncio import Redis, RedisCluster

from gateway.constants import events_key
from gateway.http.app_keys import COMMITTER
from gateway.ops.embedded import RedisProcess, free_port
from gateway.store import redis_url
from gateway.store.cluster_writer import ClusterWriter
from gateway.store.entry import Entry
from gateway.store.node_writer import NodeWriter
from gateway.store.writers import DetectingWriter, open_writer
from tests.helpers.cluster import Cluster, track
from tests.helpers.gateway import MakeClient


@pytest.mark.parametrize(
    ("url", "plain", "cluster"),
    [
        ("redis://h:6379/0", "redis://h:6379/0", None),
        ("rediss://u:p@h:6380", "rediss://u:p@h:6380", None),
        ("redis+cluster://h:7000", "redis://h:7000", True),
        ("REDISS+CLUSTER://u:p@h:7000/0", "rediss://u:p@h:7000/0", True),
        ("unix:///run/redis.sock", "unix:///run/redis.sock", False),
    ],
)
def test_the_url_says_cluster_or_leaves_it_to_the_server(
    url: str, plain: str, cluster: bool | None
) -> None:
    assert redis_url.parse(url) == redis_url.RedisTarget(plain, cluster)


async def test_a_node_says_whether_it_is_a_cluster(
    cluster: RedisCluster, cluster_server: Cluster, redis: Redis, redis_server: RedisProcess
) -> None:
    assert await redis_url.is_cluster(cluster_server.seed, 2.0)
    assert not await redis_url.is_cluster(redis_server.url, 2.0)
    cluster_writer, known = await open_writer(cluster_server.seed, 60, 2.0)
    single_writer, single = await open_writer(redis_server.url, 60, 2.0)
    assert isinstance(cluster_writer, ClusterWriter)
    assert known is True
    assert isinstance(single_writer, NodeWriter)
    assert single is False
    await cluster_writer.close()
    await single_writer.close()


async def test_a_cluster_that_answers_only_later_is_found_on_a_later_write(
    cluster: RedisCluster, cluster_server: Cluster
) -> None:
    # What `open_writer` returns when the node cannot be asked at start.
    writer = DetectingWriter(cluster_server.seed, 60, 2.0)
    entries = [Entry(events_key(n), b'{"n":%d}' % n, "web", f"m-{n}") for n in range(8)]
    assert await writer.write(entries) == 8
    assert await writer.write(entries) == 0  # dedupe, on each master
    for n in range(8):
        assert await cluster.xlen(events_key(n)) == 1
    await writer.close()


async def test_a_gateway_started_before_its_redis_spools_then_writes_there(
    make_gateway: MakeClient, tmp_path: Path
) -> None:
    port = free_port()
    client = await make_gateway(redis_url=f"redis://127.0.0.1:{port}/0", partitions=2)
    assert client.app is not None
    response = await client.post("/v1/batch", json={"batch": [track(n) for n in range(10)]})
    assert response.status == 200
    assert not client.app[COMMITTER].spool.empty
    server = RedisProcess(tmp_path / "late", port=port)
    server.start()
    try:
        for _ in range(300):  # bounded: 30 s at most
            if client.app[COMMITTER].spool.empty:
                break
            await asyncio.sleep(0.1)
        assert client.app[COMMITTER].spool.empty
        late = Redis.from_url(server.url)
        try:
            lengths = [await late.xlen(events_key(n)) for n in range(2)]
        finally:
            await late.aclose()
        assert sum(lengths) == 10
    finally:
        server.stop()
