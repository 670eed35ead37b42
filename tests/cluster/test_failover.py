"""Losing a machine: with `--wait-replicas 1`, nothing answered 200 is lost in a failover,
and a worker group reading through it delivers every message (at least once)."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import pytest
from redis.asyncio import RedisCluster

from gateway.constants import all_events_keys
from gateway.worker.consumer import Consumer
from gateway.worker.dispatch import Dispatcher
from gateway.worker.options import ConsumerOptions
from tests.helpers.cluster import PARTITIONS, Cluster
from tests.helpers.destinations import ListDestination
from tests.helpers.failover import lose_a_master

STREAMS = tuple(all_events_keys(PARTITIONS))


def consumer(
    cluster: RedisCluster, name: str, destination: ListDestination, burst: bool = False
) -> Consumer:
    options = ConsumerOptions("g", name, STREAMS, block=0.1, reclaim_idle=1.0, burst=burst)
    return Consumer(cluster, options, Dispatcher([destination]))


@pytest.mark.slow
async def test_a_master_lost_while_its_replica_lags_loses_nothing_answered_200(
    replicated_cluster: Cluster, tmp_path: Path
) -> None:
    survivor = replicated_cluster.replicas[0]  # the node that will be the promoted master
    cluster = RedisCluster(host="127.0.0.1", port=survivor.port)
    live = ListDestination("live")
    reading = consumer(cluster, "c1", live)
    stop = asyncio.Event()
    killed = asyncio.Event()

    async def read_from_the_kill() -> None:
        await killed.wait()
        await reading.run(stop)  # through the promotion, the replay and the rest

    worker = asyncio.create_task(read_from_the_kill())
    try:
        outcome = await lose_a_master(
            replicated_cluster,
            tmp_path / "data",
            PARTITIONS,
            killed,
            wait_replicas=1,
            wait_replicas_timeout=0.5,
            redis_timeout=1.5,
            spool_fsync="always",
        )
        for _ in range(150):  # bounded: 15 s for the live reader to catch up
            if set(live.ids()) >= outcome.answered:
                break
            await asyncio.sleep(0.1)
    finally:
        killed.set()  # if the scenario failed before its kill
        stop.set()
        await asyncio.wait_for(worker, 30)
    try:
        assert len(outcome.answered) > 200, outcome.statuses  # it was under load
        assert outcome.lost == set()
        copies = collections.Counter(outcome.stored)
        assert [m for m, count in copies.items() if count > 1] == []  # replay added none twice

        # What the live reader had not delivered, or was delivered but not acknowledged
        # where the promoted master can see it, another reader of the group delivers.
        rest = ListDestination("rest")
        await asyncio.wait_for(consumer(cluster, "c2", rest, burst=True).run(asyncio.Event()), 30)
    finally:
        await cluster.aclose()
    assert set(live.ids()) | set(rest.ids()) >= outcome.answered
    assert len(live.ids()) > 0  # the live reader did read through it
