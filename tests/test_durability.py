"""A 200 is a promise: duplicates, lost answers, Redis away or slow, a full spool, health.

These run the gateway in the test's process on a real socket; `test_faults.py` kills
real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.constants import events_key
from gateway.ops.embedded import RedisProcess, free_port
from gateway.store.entry import Entry
from gateway.store.spool import Spool
from tests.helpers.gateway import MakeClient
from tests.helpers.streams import stream_messages
from tests.helpers.waiting import eventually


def track(message_id: str, user: str = "u1") -> dict[str, Any]:
    return {"userId": user, "event": "E", "messageId": message_id, "writeKey": "wk"}


async def test_a_duplicate_sent_twice_lands_once(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    for _ in range(2):
        r = await client.post("/v1/track", json=track("dup-1"))
        assert r.status == 200
    r = await client.post(
        "/v1/batch",
        json={"batch": [track("dup-1") | {"type": "track"}, track("dup-2") | {"type": "track"}]},
    )
    assert r.status == 200
    assert [m["messageId"] for m in await stream_messages(redis)] == ["dup-1", "dup-2"]


async def test_a_retry_after_a_lost_answer_lands_once(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    body = msgspec.json.encode(track("lost-1"))
    _, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    await eventually(lambda: _xlen(redis, 0, at_least=1))
    writer.close()  # the client never read the answer: it is lost
    r = await client.post("/v1/track", json=track("lost-1"))  # so the client retries
    assert r.status == 200
    assert [m["messageId"] for m in await stream_messages(redis)] == ["lost-1"]


@pytest.fixture
async def down_redis(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    """A server that is not running yet (its port is free); stopped after the test."""
    server = RedisProcess(tmp_path / "redis-down", free_port())
    yield server
    server.stop()


async def test_while_redis_is_down_messages_are_spooled_then_replayed_in_order(
    make_client: MakeClient,
    down_redis: RedisProcess,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await make_client(redis_url=down_redis.url, redis_timeout=0.5, partitions=2)
    users = ["ann", "bob", "cy"]
    sent = [track(f"m{i}", users[i % 3]) for i in range(30)]
    for message in sent[:20]:
        assert (await client.post("/v1/track", json=message)).status == 200
    assert list((tmp_path / "data" / "spool").glob("*/*.seg"))  # on disk, not in memory
    # A Redis never reached since the start is a configuration mistake, not an outage.
    ready = await client.get("/ready")
    assert ready.status == 503
    assert (await ready.json())["redis"] == "unreachable since start"
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(f"Redis at {down_redis.url} is unreachable since" in e for e in errors)

    await asyncio.to_thread(down_redis.start)
    await eventually(lambda: _ready(client))
    for message in sent[20:]:  # sent while replay may be running: must not overtake
        assert (await client.post("/v1/track", json=message)).status == 200
    redis = Redis.from_url(down_redis.url)
    try:
        await eventually(lambda: _total(redis, 2, 30))
        landed = [m for n in range(2) for m in await stream_messages(redis, n)]
        assert sorted(m["messageId"] for m in landed) == sorted(m["messageId"] for m in sent)
        for user in users:  # each user's messages keep the order they were accepted in
            theirs = [m["messageId"] for m in landed if m["userId"] == user]
            assert theirs == [m["messageId"] for m in sent if m["userId"] == user]
        await eventually(lambda: _replayed(client))
        assert list((tmp_path / "data" / "spool").glob("*/*.seg")) == []
    finally:
        await redis.aclose()


async def _ready(client: TestClient[Any, Any]) -> bool:
    return (await client.get("/ready")).status == 200


async def test_a_redis_that_does_not_answer_is_treated_as_down(
    make_client: MakeClient, tmp_path: Path
) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the gateway gives up and closes
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = await make_client(redis_url=f"redis://127.0.0.1:{port}/0", redis_timeout=0.3)
        r = await client.post("/v1/track", json=track("slow-1"))
        assert r.status == 200
        assert list((tmp_path / "data" / "spool").glob("*/*.seg"))
        ready = await client.get("/ready")
        assert ready.status == 503
        body = await ready.json()
        assert body["redis"] == "unreachable since start"
        assert body["spool"]["replaying"] is True
    finally:
        server.close()


async def test_redis_down_and_the_spool_full_is_a_503_with_retry_after(
    make_client: MakeClient, down_redis: RedisProcess
) -> None:
    client = await make_client(
        redis_url=down_redis.url, redis_timeout=0.5, spool_max_bytes=1000, retry_after=7
    )
    statuses = []
    for i in range(20):
        r = await client.post("/v1/track", json=track(f"f{i}"))
        statuses.append(r.status)
        if r.status != 200:
            assert r.status == 503
            assert r.headers["Retry-After"] == "7"
            break
    assert statuses[0] == 200
    assert statuses[-1] == 503
    ready = await client.get("/ready")
    assert ready.status == 503
    assert ready.headers["Retry-After"] == "7"
    assert (await ready.json())["status"] == "unavailable"


async def test_health_and_ready(client: TestClient[Any, Any]) -> None:
    health = await client.get("/health")
    assert health.status == 200
    assert await health.json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status == 200
    body = await ready.json()
    assert body["status"] == "ready"
    assert body["redis"] == "up"
    assert body["spool"]["replaying"] is False


async def _xlen(redis: Redis, partition: int, at_least: int) -> bool:
    return int(await redis.xlen(events_key(partition))) >= at_least


async def _total(redis: Redis, partitions: int, at_least: int) -> bool:
    lengths = [int(await redis.xlen(events_key(n))) for n in range(partitions)]
    return sum(lengths) >= at_least


async def _replayed(client: TestClient[Any, Any]) -> bool:
    body = await (await client.get("/ready")).json()
    return body["spool"]["replaying"] is False


async def test_a_restart_replays_its_own_spool_and_adopts_orphaned_ones(
    make_client: MakeClient, redis: Redis, tmp_path: Path
) -> None:
    # Two processes (--workers 2) spooled and died; now one process starts on the directory.
    root = tmp_path / "data" / "spool"
    first, second = (
        Spool.open(root, 1 << 20, 1 << 16, "no"),
        Spool.open(root, 1 << 20, 1 << 16, "no"),
    )
    await first.append([_entry("slot0-a"), _entry("slot0-b")])
    await second.append([_entry("slot1-a")])
    await first.close()
    await second.close()

    client = await make_client()
    assert (await client.post("/v1/track", json=track("live"))).status == 200
    await eventually(lambda: _xlen(redis, 0, at_least=4))
    ids = [m["messageId"] for m in await stream_messages(redis)]
    assert ids.index("slot0-a") < ids.index("slot0-b") < ids.index("live")  # order kept
    assert sorted(ids) == ["live", "slot0-a", "slot0-b", "slot1-a"]
    await eventually(lambda: _no_segments(root))


def _entry(message_id: str) -> Entry:
    data = msgspec.json.encode({"type": "track", "messageId": message_id, "event": "E"})
    return Entry(events_key(0), data, "default", message_id)


async def _no_segments(root: Path) -> bool:
    return not _segments(root)


def _segments(root: Path) -> list[Path]:
    return list(root.glob("*/*.seg"))
