"""`gateway tail`: the newest messages of every partition, oldest first, as JSON lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys

from redis.asyncio import Redis

from gateway.ops.embedded import RedisProcess
from gateway.worker import tail
from tests.helpers.gateway import MakeClient


async def test_last_reads_every_partition_in_arrival_order(
    make_client: MakeClient, redis: Redis
) -> None:
    client = await make_client(partitions=4)
    for n in range(12):
        answer = await client.post("/v1/t", json={"userId": f"user-{n}", "event": f"E{n}"})
        assert answer.status == 200
    lines = [json.loads(line) for line in await tail.last(redis, partitions=4, count=10)]
    # The newest ten, oldest first (by entry id: messages of one millisecond in two
    # partitions may come in either order).
    assert sorted(line["message"]["event"] for line in lines) == sorted(
        f"E{n}" for n in range(2, 12)
    )
    millis = [int(line["id"].split("-")[0]) for line in lines]
    assert millis == sorted(millis)
    assert {line["stream"] for line in lines} > {"gateway:events:{0}"}  # not one partition
    assert all(line["source"] == "default" for line in lines)


async def test_follow_prints_what_arrives_after_it_started(
    make_client: MakeClient, redis: Redis
) -> None:
    client = await make_client(partitions=2)
    await client.post("/v1/t", json={"userId": "before", "event": "Old"})
    lines: list[str] = []
    three = asyncio.Event()

    def emit(line: str) -> None:
        lines.append(line)
        if len(lines) == 3:
            three.set()

    streams = ["gateway:events:{0}", "gateway:events:{1}"]
    follower = asyncio.create_task(tail.follow(redis, streams, emit, block_ms=100))
    await asyncio.sleep(0.3)  # XREAD $ starts from what is last when it first runs
    for user in ("a", "b", "c"):
        await client.post("/v1/t", json={"userId": user, "event": "New"})
    async with asyncio.timeout(10):
        await three.wait()
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await follower
    events = [json.loads(line)["message"] for line in lines]
    assert sorted(m["userId"] for m in events) == ["a", "b", "c"]


async def test_the_command_prints_json_lines(
    make_client: MakeClient, redis_server: RedisProcess
) -> None:
    client = await make_client(partitions=2)
    for user in ("a", "b", "c"):
        await client.post("/v1/t", json={"userId": user, "event": "Seen"})
    run = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "tail",
        "--redis-url",
        redis_server.url,
        "--partitions",
        "2",
        "-n",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(run.communicate(), 60)
    assert run.returncode == 0, err
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert [line["message"]["userId"] for line in lines] == ["b", "c"]
