"""A real Redis Cluster of three masters, from the binary the embedded server uses.

Started once per session: three `valkey-server --cluster-enabled yes` processes, a third
of the 16384 slots each (CLUSTER ADDSLOTSRANGE), introduced to each other with CLUSTER
MEET. Each test gets it emptied.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import RedisCluster

from gateway.ops.embedded import RedisProcess, free_port
from tests.helpers.cluster import BUS_OFFSET, MASTERS, Cluster
from tests.helpers.gateway import MakeClient, gateway_clients


def _cluster_port() -> int:
    # Both the port and its bus port must be free.
    for _ in range(100):
        port = free_port()
        if port + BUS_OFFSET > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _wait_until_ok(cluster: Cluster, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for index in range(len(cluster.nodes)):
        with cluster.client(index) as client:
            while True:
                info = client.cluster("INFO")  # parsed into a dict by redis-py
                if info.get("cluster_state") == "ok" and int(
                    info.get("cluster_known_nodes", 0)
                ) == len(cluster.nodes):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster is not ok after {timeout:g}s: {info}")
                time.sleep(0.05)


@pytest.fixture(scope="session")
def cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three masters sharing the slots; stopped at the end of the session."""
    root = tmp_path_factory.mktemp("cluster")
    nodes = []
    for index in range(MASTERS):
        node = RedisProcess(
            Path(root) / f"node{index}",
            port=_cluster_port(),
            extra_args=("--cluster-enabled", "yes", "--cluster-node-timeout", "5000"),
        )
        nodes.append(node)
    cluster = Cluster(nodes)
    try:
        for node in nodes:
            node.start()
        for index, (first, last) in enumerate(cluster.ranges()):
            with cluster.client(index) as client:
                client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
        with cluster.client(0) as client:
            for node in nodes[1:]:
                client.execute_command("CLUSTER MEET", "127.0.0.1", node.port)
        _wait_until_ok(cluster)
        yield cluster
    finally:
        for node in nodes:
            node.stop()


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
