"""A three-master Redis Cluster as the tests see it, and what they read back from it."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from redis import Redis as SyncRedis
from redis.asyncio import RedisCluster

from gateway.constants import events_key
from gateway.ops.embedded import RedisProcess
from tests.helpers.streams import read_stream

SLOTS = 16384
MASTERS = 3
BUS_OFFSET = 10000
"""A cluster node also listens on its port + 10000 for the other nodes (the cluster bus)."""


@dataclasses.dataclass
class Cluster:
    """Three running masters."""

    nodes: list[RedisProcess]

    @property
    def seed(self) -> str:
        """The URL of one node: the gateway finds the others (and that it is a cluster)."""
        return self.nodes[0].url

    def client(self, index: int) -> SyncRedis:
        """A plain client of one node."""
        return SyncRedis(host="127.0.0.1", port=self.nodes[index].port)

    def ranges(self) -> list[tuple[int, int]]:
        """The slot range each node was given, in node order."""
        size = SLOTS // MASTERS
        return [(i * size, SLOTS - 1 if i == MASTERS - 1 else (i + 1) * size - 1) for i in range(3)]


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
