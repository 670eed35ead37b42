"""Delivery you can trust, with real processes on a real Redis: every partition read, from
workers started before any traffic; nothing lost when one is killed; the streams trimmed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from gateway.constants import events_key
from gateway.ops.embedded import RedisProcess
from gateway.worker.archive_reader import read_lines
from tests.helpers.destinations import Collector
from tests.helpers.processes import finish, kill, serving, start, wait_for_line
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.slow


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    server = Collector()
    yield server
    await server.close()


def message(n: int, users: int, padding: int = 0) -> dict[str, Any]:
    return {"type": "track", "userId": f"user-{n % users}", "event": "Clicked",
            "messageId": f"m{n}", "properties": {"n": n, "pad": "x" * padding}}  # fmt: skip


async def post(base: str, messages: Sequence[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession() as http:
        for first in range(0, len(messages), 100):
            batch = {"batch": list(messages[first : first + 100])}
            async with http.post(f"{base}/v1/batch", json=batch) as response:
                assert response.status == 200, await response.text()


@contextlib.asynccontextmanager
async def workers(redis_url: str, *extra: str, names: str = "ab") -> AsyncIterator[list[Any]]:
    """`gateway worker`s of group g, one per name, each started and ready; stopped after."""
    processes = []
    logs: list[asyncio.Task[bytes]] = []
    try:
        for name in names:
            process = await start("worker", "--redis-url", redis_url, "--group", "g",
                                  "--consumer", name, "--block", "0.2", *extra)  # fmt: skip
            processes.append(process)
            await wait_for_line(process, f"consumer {name} of group g")
            logs.append(asyncio.create_task(process.stderr.read()))  # type: ignore[union-attr]
        yield processes
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            await asyncio.wait_for(process.wait(), 30)
        for log in logs:
            await log


async def delivered(collector: Collector, count: int, limit: float = 60) -> None:
    async def enough() -> bool:
        return len(set(collector.ids())) >= count

    await eventually(enough, attempts=int(limit / 0.025))


async def test_workers_started_before_traffic_read_every_partition_and_lose_nothing(
    redis: Redis, redis_server: RedisProcess, collector: Collector, tmp_path: Path
) -> None:
    url = await collector.start()
    args = ("--destination", "http", "--url", url, "--reclaim-idle", "1", "--retries", "0",
            "--max-attempts", "1000")  # fmt: skip
    async with (
        serving(redis_server.url, tmp_path / "data", "--partitions", "4") as base,
        workers(redis_server.url, *args) as running,  # --partitions left at 1
    ):
        first = [message(n, users=50) for n in range(1000)]
        await post(base, first)
        await delivered(collector, 1000)
        await asyncio.sleep(0.5)  # nothing more may come
        assert sorted(collector.ids()) == sorted(m["messageId"] for m in first)  # each once
        lengths = [await redis.xlen(events_key(p)) for p in range(4)]
        assert all(lengths), lengths  # the users spread over the 4 partitions

        collector.fail_next = 10**9  # the destination answers 500s
        seen = collector.requests
        await post(base, [message(n, users=50) for n in range(1000, 1500)])
        await eventually(lambda: _true(collector.requests > seen + 5))
        kill(running[0])
        await running[0].wait()
        collector.fail_next = 0

        await delivered(collector, 1500)
        assert set(collector.ids()) == {f"m{n}" for n in range(1500)}


async def _true(value: bool) -> bool:
    return value


async def test_workers_already_running_read_the_partitions_of_a_gateway_restarted_with_more(
    redis: Redis, redis_server: RedisProcess, collector: Collector, tmp_path: Path
) -> None:
    url = await collector.start()
    data = tmp_path / "data"
    async with workers(redis_server.url, "--destination", "http", "--url", url):
        async with serving(redis_server.url, data, "--partitions", "4") as base:
            await post(base, [message(n, users=80) for n in range(200)])
        async with serving(redis_server.url, data, "--partitions", "8") as base:
            await post(base, [message(n, users=80) for n in range(200, 600)])
            await delivered(collector, 600, limit=30)

    assert sorted(collector.ids()) == sorted(f"m{n}" for n in range(600))
    lengths = [await redis.xlen(events_key(p)) for p in range(4, 8)]
    assert all(lengths), lengths
    groups = [await redis.xinfo_groups(events_key(p)) for p in range(8)]
    assert all(g[0]["pending"] == 0 and g[0]["lag"] == 0 for g in groups)


async def test_retention_keeps_only_the_undelivered_and_redis_memory_bounded(
    redis: Redis, redis_server: RedisProcess, collector: Collector, tmp_path: Path
) -> None:
    url = await collector.start()
    retention = ("--retention-acked", "1", "--retention-max-age", "0")
    async with (
        serving(redis_server.url, tmp_path / "data", "--partitions", "2", "--dedupe-window",
                "1", *retention) as base,
        workers(redis_server.url, "--destination", "http", "--url", url, *retention,
                names="a"),
    ):  # fmt: skip
        posted = 0
        start_at = time.monotonic()
        early: int | None = None
        longest = 0
        while time.monotonic() - start_at < 20:
            batch = [message(n, users=50, padding=2000) for n in range(posted, posted + 300)]
            await post(base, batch)
            posted += 300
            if early is None and time.monotonic() - start_at > 4:
                early = int((await redis.info("memory"))["used_memory"])
            longest = max(longest, sum([await redis.xlen(events_key(p)) for p in range(2)]))
        await delivered(collector, posted)

        async def trimmed() -> bool:
            return sum([await redis.xlen(events_key(p)) for p in range(2)]) == 0

        await eventually(trimmed, attempts=400)
        late = int((await redis.info("memory"))["used_memory"])

    written = posted * 2100
    assert early is not None
    assert posted >= 3000, posted  # enough to fill Redis were nothing trimmed
    assert late - early < written / 4, (late - early, written)
    assert longest < posted / 2, (longest, posted)  # bounded all along, not only at the end


async def test_a_worker_killed_while_archiving_leaves_no_message_missing(
    redis: Redis, redis_server: RedisProcess, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    ids = []
    for n in range(6000):
        body = f'{{"messageId":"m{n}","receivedAt":"2026-12-02T14:00:00.000Z"}}'
        ids.append(f"m{n}")
        await redis.xadd(events_key(0), {"data": body, "source": "web"})
    args = ("worker", "--redis-url", redis_server.url, "--group", "archive", "--destination",
            "archive", "--path", str(archive), "--batch-size", "10",
            "--reclaim-idle", "1")  # fmt: skip

    first = await start(*args, "--consumer", "a")

    async def writing() -> bool:
        return any(p.stat().st_size > 0 for p in archive.rglob("*.gz"))

    await eventually(writing, attempts=1200)
    kill(first)
    await first.wait()
    archived_before = sum(1 for p in archive.rglob("*.gz") for _ in read_lines(p))
    code, _, err = await finish(await start(*args, "--consumer", "b", "--burst"), limit=120)

    assert code == 0, err
    found = [line for p in archive.rglob("*.gz") for line in read_lines(p)]
    assert {line.split(b'"')[3].decode() for line in found} == set(ids)
    assert archived_before < len(ids)  # it was killed part way
    assert len(found) - len(ids) <= 10  # at most the batch in hand, twice
