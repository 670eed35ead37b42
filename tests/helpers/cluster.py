"""A three-master Redis Cluster as the tests see it (with a replica each, or not), how it
starts, and what they read back from it."""

from __future__ import annotations

import dataclasses
import socket
import time
from pathlib import Path
from typing import Any

import msgspec
from redis import Redis as SyncRedis
from redis.asyncio import RedisCluster

from gateway.constants import events_key
from gateway.ops.embedded import RedisProcess, free_port
from tests.helpers.streams import read_stream

SLOTS = 16384
MASTERS = 3
BUS_OFFSET = 10000
"""A cluster node also listens on its port + 10000 for the other nodes (the cluster bus)."""


@dataclasses.dataclass
class Cluster:
    """Three running masters, and the replica of each (in the same order) if it has them."""

    nodes: list[RedisProcess]
    replicas: list[RedisProcess] = dataclasses.field(default_factory=list)

    @property
    def processes(self) -> list[RedisProcess]:
        """Every node, masters first."""
        return [*self.nodes, *self.replicas]

    @property
    def seed(self) -> str:
        """The URL of one node: the gateway finds the others (and that it is a cluster)."""
        return self.nodes[0].url

    def client(self, index: int) -> SyncRedis:
        """A plain client of one master (as started)."""
        return SyncRedis(host="127.0.0.1", port=self.nodes[index].port)

    def stop(self) -> None:
        """Stop every node that still runs."""
        for node in self.processes:
            node.stop()

    def ranges(self) -> list[tuple[int, int]]:
        """The slot range each node was given, in node order."""
        size = SLOTS // MASTERS
        return [(i * size, SLOTS - 1 if i == MASTERS - 1 else (i + 1) * size - 1) for i in range(3)]


def _port() -> int:
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


def start_cluster(root: Path, replicas: bool = False, node_timeout: int = 5000) -> Cluster:
    """Three masters sharing the slots, each with a replica if `replicas`; running and ok.

    `node_timeout` (ms) is how long a node may not answer before it counts as failed (and
    a replica of a failed master takes over).
    """
    options = ("--cluster-enabled", "yes", "--cluster-node-timeout", str(node_timeout))
    count = 2 * MASTERS if replicas else MASTERS
    make = [RedisProcess(root / f"node{i}", port=_port(), extra_args=options) for i in range(count)]
    cluster = Cluster(make[:MASTERS], make[MASTERS:])
    try:
        for node in cluster.processes:
            node.start()
        for index, (first, last) in enumerate(cluster.ranges()):
            with cluster.client(index) as client:
                client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
        with cluster.client(0) as client:
            for node in cluster.processes[1:]:
                client.execute_command("CLUSTER MEET", "127.0.0.1", node.port)
        _wait_until(cluster, lambda info, _: int(info["cluster_known_nodes"]) == len(make))
        for master, replica in zip(cluster.nodes, cluster.replicas, strict=False):
            with _client(master) as client:
                master_id = client.execute_command("CLUSTER MYID").decode()
            with _client(replica) as client:
                client.execute_command("CLUSTER REPLICATE", master_id)
        _wait_until(cluster, _ready)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _client(node: RedisProcess) -> SyncRedis:
    return SyncRedis(host="127.0.0.1", port=node.port)


def _ready(info: dict[str, Any], client: SyncRedis) -> bool:
    """The node sees the cluster ok and, if a replica, has synced with its master."""
    if info.get("cluster_state") != "ok":
        return False
    replication = client.info("replication")
    return replication["role"] == "master" or replication.get("master_link_status") == "up"


def _wait_until(cluster: Cluster, ok: Any, timeout: float = 30.0) -> None:
    """Until `ok(CLUSTER INFO, client)` holds on every node."""
    deadline = time.monotonic() + timeout
    for node in cluster.processes:
        with _client(node) as client:
            while True:
                info = client.cluster("INFO")  # parsed into a dict by redis-py
                if ok(info, client):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster is not ready after {timeout:g}s: {info}")
                time.sleep(0.05)


PARTITIONS = 16
"""Enough partitions that each master holds some."""


def track(n: int) -> dict[str, Any]:
    """A track message numbered `n`: its own user and messageId."""
    return {"type": "track", "event": "Cluster", "userId": f"user-{n}", "messageId": f"m-{n}"}


async def read_partitions(cluster: RedisCluster, partitions: int) -> dict[int, list[str]]:
    """The messageIds of each partition, oldest first."""
    found: dict[int, list[str]] = {}
    for n in range(partitions):
        entries = await read_stream(cluster, events_key(n))
        found[n] = [msgspec.json.decode(fields[b"data"])["messageId"] for _, fields in entries]
    return found


def holders(cluster_server: Cluster) -> dict[str, int]:
    """The node (index) that physically holds each partition stream, asked node by node."""
    held: dict[str, int] = {}
    for index in range(len(cluster_server.nodes)):
        with cluster_server.client(index) as client:
            for key in client.scan_iter(match="gateway:events:*"):  # this node's keys only
                held[key.decode()] = index
    return held
