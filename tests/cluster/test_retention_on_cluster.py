"""Partitions recorded and streams trimmed on a three-master Redis Cluster: each stream is in
its own slot, so each gets its own XINFO, XPENDING and XTRIM, sent to its master."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import RedisCluster

from gateway.constants import all_events_keys, events_key
from gateway.store import partitions, retention
from gateway.store.retention import Retention, Trimmer
from gateway.worker.consumer import Consumer
from gateway.worker.dispatch import Dispatcher
from gateway.worker.options import ConsumerOptions
from gateway.worker.partitions import PartitionWatch
from tests.helpers.cluster import Cluster
from tests.helpers.destinations import ListDestination
from tests.helpers.gateway import MakeClient
from tests.helpers.streams import entry_ids, read_group
from tests.helpers.waiting import eventually

PARTITIONS = 6


async def test_the_gateway_records_its_partitions_on_a_cluster(
    cluster: RedisCluster, make_gateway: MakeClient
) -> None:
    await make_gateway(partitions=PARTITIONS)

    async def recorded() -> bool:
        found = await partitions.recorded(cluster)
        return found is not None and found.highest == PARTITIONS

    await eventually(recorded)


async def test_streams_on_every_master_are_trimmed_to_what_is_undelivered(
    cluster: RedisCluster, cluster_server: Cluster
) -> None:
    streams = all_events_keys(PARTITIONS)
    owners = {getattr(cluster.get_node_from_key(stream), "name", None) for stream in streams}
    assert len(owners) == 3  # the partitions spread over the masters
    old = int((time.time() - 100) * 1000)
    for stream in streams:
        for n in range(5):
            await cluster.xadd(stream, {"data": b"{}", "source": b"web"}, id=f"{old}-{n}")
        await cluster.xgroup_create(stream, "g", id="0")
        await cluster.xack(stream, "g", *(await read_group(cluster, stream, "g", 3))[:2])
    await partitions.record(cluster, PARTITIONS)

    done = await Trimmer(cluster, Retention(acked=10, max_age=0), 1, "test").step()

    assert done == retention.Trimmed(acked=2 * PARTITIONS, expired=0)
    for stream in streams:  # one pending, two unread
        assert await entry_ids(cluster, stream) == [f"{old}-{n}" for n in (2, 3, 4)]
    assert (await retention.counts(cluster)).acked == 2 * PARTITIONS

    done = await retention.trim(cluster, streams, Retention(acked=10, max_age=50))
    assert done.expired == 3 * PARTITIONS
    assert all([await cluster.xlen(s) == 0 for s in streams])


async def test_a_worker_on_a_cluster_reads_partitions_recorded_while_it_runs(
    cluster: RedisCluster,
) -> None:
    received = ListDestination("list")
    options = ConsumerOptions("g", "c", (events_key(0),), block=0.05, reclaim_idle=5)
    consumer = Consumer(cluster, options, Dispatcher([received]))
    consumer._watch = PartitionWatch(cluster, consumer.streams, every=0.05)
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    try:
        await partitions.record(cluster, PARTITIONS)
        for n in range(PARTITIONS):
            data = f'{{"type":"track","event":"E","userId":"u","messageId":"m{n}"}}'
            await cluster.xadd(events_key(n), {"data": data, "source": "web"})

        async def delivered() -> bool:
            return sorted(received.ids()) == [f"m{n}" for n in range(PARTITIONS)]

        await eventually(delivered, attempts=800)
    finally:
        stop.set()
        await asyncio.wait_for(running, 20)
