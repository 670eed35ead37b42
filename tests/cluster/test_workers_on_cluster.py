"""Workers, `gateway status` and dead letters on a three-master Redis Cluster."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import RedisCluster

from gateway.constants import all_events_keys
from gateway.worker import deadletters, redrive
from gateway.worker.consumer import Consumer
from gateway.worker.dispatch import Dispatcher
from gateway.worker.options import ConsumerOptions
from tests.helpers.cluster import PARTITIONS, Cluster, track
from tests.helpers.destinations import ListDestination
from tests.helpers.gateway import MakeClient
from tests.helpers.processes import gateway

STREAMS = tuple(all_events_keys(PARTITIONS))


async def send(client: TestClient[Any, Any], first: int, count: int, per_batch: int = 100) -> None:
    for start in range(first, first + count, per_batch):
        stop = min(start + per_batch, first + count)
        body = {"batch": [track(n) for n in range(start, stop)]}
        response = await client.post("/v1/batch", json=body)
        assert response.status == 200, await response.text()


def options(**overrides: object) -> ConsumerOptions:
    values: dict[str, object] = {"block": 0.1, "reclaim_idle": 0.1, "max_attempts": 2}
    values.update(overrides)
    return ConsumerOptions("g", "c1", STREAMS, **values)  # type: ignore[arg-type]


@pytest.mark.slow
async def test_a_worker_delivers_every_partition_to_a_file(
    cluster: RedisCluster, cluster_server: Cluster, make_gateway: MakeClient, tmp_path: Path
) -> None:
    client = await make_gateway(partitions=PARTITIONS)
    total = 2000
    await send(client, 0, total)
    out = tmp_path / "out"

    # --partitions 4: the other twelve are found by a SCAN of each master.
    code, _, err = await gateway(
        "worker", "--redis-url", cluster_server.seed, "--partitions", "4", "--group", "files",
        "--destination", "file", "--path", str(out), "--burst", "--batch-size", "250",
        limit=60,
    )  # fmt: skip
    assert code == 0, err
    assert f"on {PARTITIONS} partition(s)" in err

    lines = [
        line for path in sorted(out.glob("*.ndjson")) for line in path.read_bytes().splitlines()
    ]
    ids = [msgspec.json.decode(line)["messageId"] for line in lines]
    assert len(ids) == total  # each once
    assert set(ids) == {f"m-{n}" for n in range(total)}

    code, out_json, err = await gateway(
        "status", "--redis-url", cluster_server.seed, "--partitions", str(PARTITIONS), "--json"
    )
    assert code == 0, err
    status = msgspec.json.decode(out_json)
    assert sum(s["length"] for s in status["streams"]) == total
    groups = [g for g in status["groups"] if g["group"] == "files"]
    assert sorted(g["stream"] for g in groups) == sorted(STREAMS)
    assert all(g["pending"] == 0 and g["lag"] == 0 for g in groups)


async def test_a_waiting_worker_gets_what_arrives_on_any_partition(
    cluster: RedisCluster, make_gateway: MakeClient
) -> None:
    client = await make_gateway(partitions=PARTITIONS)
    destination = ListDestination("list")
    # No reclaim during the test: each message is delivered once, by a read.
    consumer = Consumer(cluster, options(reclaim_idle=30), Dispatcher([destination]))
    await consumer.create_groups()
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    await send(client, 0, 300, per_batch=30)
    for _ in range(100):  # bounded: 10 s at most
        if len(destination.received) >= 300:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(running, 20)
    assert sorted(destination.ids()) == sorted(f"m-{n}" for n in range(300))
    for stream in STREAMS:
        assert (await cluster.xpending(stream, "g"))["pending"] == 0


async def test_dead_letters_and_their_redrive_on_a_cluster(
    cluster: RedisCluster, make_gateway: MakeClient
) -> None:
    client = await make_gateway(partitions=PARTITIONS)
    await send(client, 0, 40)
    refusing = ListDestination("hook", failing=True, retry=False)
    consumer = Consumer(cluster, options(burst=True), Dispatcher([refusing]))
    await asyncio.wait_for(consumer.run(asyncio.Event()), 30)
    assert consumer.stats.dead == 40

    letters = await deadletters.read(cluster, "g", 100)
    assert sorted(
        letter.data and msgspec.json.decode(letter.data)["messageId"] for _, letter in letters
    ) == sorted(f"m-{n}" for n in range(40))
    assert {letter.stream for _, letter in letters} <= set(STREAMS)

    working = ListDestination("hook")
    report = await redrive.redrive(cluster, "g", Dispatcher([working]))
    assert (report.delivered, report.failed) == (40, 0)
    assert await deadletters.read(cluster, "g", 100) == []
