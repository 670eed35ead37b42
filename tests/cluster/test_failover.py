"""Losing a machine: with `--wait-replicas 1`, nothing answered 200 is lost in a failover."""

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


@pytest.mark.slow
async def test_a_master_lost_while_its_replica_lags_loses_nothing_answered_200(
    replicated_cluster: Cluster, tmp_path: Path
) -> None:
    outcome = await lose_a_master(
        replicated_cluster,
        tmp_path / "data",
        PARTITIONS,
        wait_replicas=1,
        wait_replicas_timeout=0.5,
        redis_timeout=1.5,
        spool_fsync="always",
    )
    assert len(outcome.answered) > 200, outcome.statuses  # it was under load
    assert outcome.lost == set()
    copies = collections.Counter(outcome.stored)
    assert [m for m, count in copies.items() if count > 1] == []  # replay added none twice

    survivor = replicated_cluster.replicas[0]
    cluster = RedisCluster(host="127.0.0.1", port=survivor.port)
    try:
        destination = ListDestination("list")
        streams = tuple(all_events_keys(PARTITIONS))
        options = ConsumerOptions("g", "c1", streams, block=0.1, burst=True)
        await asyncio.wait_for(
            Consumer(cluster, options, Dispatcher([destination])).run(asyncio.Event()), 30
        )
    finally:
        await cluster.aclose()
    assert set(destination.ids()) >= outcome.answered
