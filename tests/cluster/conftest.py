"""A real Redis Cluster of three masters, from the binary the embedded server uses.

Started once per session: three `valkey-server --cluster-enabled yes` processes, a third
of the 16384 slots each (CLUSTER ADDSLOTSRANGE), introduced to each other with CLUSTER
MEET (`tests.helpers.cluster.start_cluster`). Each test gets it emptied. A test that
breaks machines starts its own, with replicas (`tests/cluster/test_failover.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import RedisCluster

from tests.helpers.cluster import Cluster, start_cluster
from tests.helpers.gateway import MakeClient, gateway_clients


@pytest.fixture(scope="session")
def cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three masters sharing the slots; stopped at the end of the session."""
    cluster = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def cluster(cluster_server: Cluster) -> AsyncIterator[RedisCluster]:
    """A redis-py cluster client of the session's cluster, emptied before each test."""
    client = RedisCluster.from_url(cluster_server.seed)
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    await client.aclose()


@pytest.fixture
async def make_gateway(
    cluster: RedisCluster, cluster_server: Cluster, tmp_path: Path
) -> AsyncIterator[MakeClient]:
    """A gateway in front of the cluster: `await make_gateway(partitions=16)`.

    `redis_url` defaults to the first node's plain `redis://` URL: the gateway finds out
    that it is a cluster.
    """
    async with gateway_clients(cluster_server.seed, tmp_path / "data") as make:
        yield make


@pytest.fixture
def replicated_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Three masters with a replica each, failing over within about 2 s; this test's own."""
    cluster = start_cluster(tmp_path / "replicated", replicas=True, node_timeout=2000)
    try:
        yield cluster
    finally:
        cluster.stop()
