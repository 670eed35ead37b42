"""A slot that moves to another master while the gateway runs: writes follow it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from redis.asyncio import RedisCluster
from redis.crc import key_slot

from gateway.constants import events_key
from gateway.http.app_keys import COMMITTER
from gateway.store.cluster_writer import ClusterWriter
from gateway.worker.consumer import Consumer
from gateway.worker.dispatch import Dispatcher
from gateway.worker.options import ConsumerOptions
from tests.helpers.cluster import Cluster, holders, read_partitions, track
from tests.helpers.destinations import ListDestination
from tests.helpers.gateway import MakeClient

PARTITIONS = 4


def owner(cluster_server: Cluster, slot: int) -> int:
    """The index of the node that serves `slot`, as the nodes themselves say."""
    with cluster_server.client(0) as client:
        for first, last, master, *_ in client.execute_command("CLUSTER SLOTS"):
            if first <= slot <= last:
                port = int(master[1])
                return [n.port for n in cluster_server.nodes].index(port)
    raise AssertionError(f"slot {slot} has no master")


def node_ids(cluster_server: Cluster) -> list[str]:
    ids = []
    for index in range(len(cluster_server.nodes)):
        with cluster_server.client(index) as client:
            ids.append(client.execute_command("CLUSTER MYID").decode())
    return ids


def start_moving(cluster_server: Cluster, slot: int, source: int, target: int) -> None:
    """Mark `slot` as moving from `source` to `target` and move its keys, not the slot yet."""
    ids = node_ids(cluster_server)
    with cluster_server.client(source) as src, cluster_server.client(target) as dst:
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[source])
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[target])
        while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 1000):
            port = cluster_server.nodes[target].port
            src.execute_command("MIGRATE", "127.0.0.1", port, "", 0, 5000, "KEYS", *keys)


def finish_moving(cluster_server: Cluster, slot: int, source: int, target: int) -> None:
    """Give `slot` to `target`, on every node."""
    ids = node_ids(cluster_server)
    for index in (target, source, *range(len(cluster_server.nodes))):
        with cluster_server.client(index) as client:
            client.execute_command("CLUSTER SETSLOT", slot, "NODE", ids[target])


@contextlib.contextmanager
def moved(cluster_server: Cluster, slot: int, target: int) -> Iterator[int]:
    """`slot` served by node `target` inside the block, by its first owner after it."""
    source = owner(cluster_server, slot)
    start_moving(cluster_server, slot, source, target)
    finish_moving(cluster_server, slot, source, target)
    try:
        yield source
    finally:
        start_moving(cluster_server, slot, target, source)
        finish_moving(cluster_server, slot, target, source)


@pytest.mark.slow
async def test_writes_and_reads_follow_a_slot_to_its_new_master(
    cluster: RedisCluster, cluster_server: Cluster, make_gateway: MakeClient
) -> None:
    client = await make_gateway(partitions=PARTITIONS)
    assert client.app is not None
    writer = client.app[COMMITTER]._writer
    assert isinstance(writer, ClusterWriter)
    first = {"batch": [track(n) for n in range(0, 200)]}
    assert (await client.post("/v1/batch", json=first)).status == 200
    learned = writer.refreshes

    stream = events_key(0)
    slot = key_slot(stream.encode())
    target = (owner(cluster_server, slot) + 1) % 3
    with moved(cluster_server, slot, target):
        assert holders(cluster_server)[stream] == target
        second = {"batch": [track(n) for n in range(200, 400)]}
        assert (await client.post("/v1/batch", json=second)).status == 200
        assert writer.refreshes > learned  # told MOVED, it learned the map again
        assert client.app[COMMITTER].spool.empty  # and sent them there, not to the spool

        found = await read_partitions(cluster, PARTITIONS)
        ids = sorted(message_id for partition in found.values() for message_id in partition)
        assert ids == sorted(f"m-{n}" for n in range(400))
        assert len(found[0]) > 0

        destination = ListDestination("list")
        streams = tuple(events_key(n) for n in range(PARTITIONS))
        options = ConsumerOptions("g", "c1", streams, block=0.1, burst=True)
        await asyncio.wait_for(
            Consumer(cluster, options, Dispatcher([destination])).run(asyncio.Event()), 30
        )
        assert sorted(destination.ids()) == ids


@pytest.mark.slow
async def test_writes_to_a_slot_in_the_middle_of_a_move_are_spooled_then_replayed(
    cluster: RedisCluster, cluster_server: Cluster, make_gateway: MakeClient
) -> None:
    client = await make_gateway(partitions=PARTITIONS)
    assert client.app is not None
    spool = client.app[COMMITTER].spool
    assert (await client.post("/v1/batch", json={"batch": [track(0)]})).status == 200
    stream = events_key(0)
    slot = key_slot(stream.encode())
    source = owner(cluster_server, slot)
    target = (source + 1) % 3
    start_moving(cluster_server, slot, source, target)
    try:
        # The stream's keys are on the target, the slot is not yet: ASK, then TRYAGAIN.
        body = {"batch": [track(n) for n in range(1, 200)]}
        response = await client.post("/v1/batch", json=body)
        assert response.status == 200  # durable: what the cluster did not take is spooled
        assert not spool.empty
    finally:
        finish_moving(cluster_server, slot, source, target)
    try:
        for _ in range(300):  # bounded: 30 s at most
            if spool.empty:
                break
            await asyncio.sleep(0.1)
        assert spool.empty
        found = await read_partitions(cluster, PARTITIONS)
        ids = sorted(message_id for partition in found.values() for message_id in partition)
        assert ids == sorted(f"m-{n}" for n in range(200))
    finally:
        start_moving(cluster_server, slot, target, source)
        finish_moving(cluster_server, slot, target, source)
