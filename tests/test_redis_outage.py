"""Redis down or hung with no room to spool: 503 with Retry-After within a stated bound,
never a hang or a 200. (With room in the spool, the same outage answers 200 once the
messages are on disk: tests/test_durability.py.)"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.ops.embedded import RedisProcess
from tests.helpers.gateway import MakeClient

TRACK = {"userId": "u1", "event": "E"}
TIMEOUT = 1.0
"""`redis_timeout` of the gateway under test: the bound on how long a request waits."""
SLACK = 1.5
"""Allowance for this shared 2-core machine on top of the bound."""


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis")
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


async def timed_post(client: TestClient[Any, Any]) -> tuple[int, dict[str, str], float]:
    started = time.monotonic()
    response = await client.post("/v1/track", json=TRACK)
    await response.read()
    return response.status, dict(response.headers), time.monotonic() - started


async def test_killed_redis_gives_503_then_200_when_back(
    make_client: MakeClient, own_redis: RedisProcess
) -> None:
    client = await make_client(
        redis_url=own_redis.url, redis_timeout=TIMEOUT, retry_after=3, spool_max_bytes=1
    )
    assert (await timed_post(client))[0] == 200

    own_redis.kill()
    for _ in range(3):
        status, headers, elapsed = await timed_post(client)
        assert status == 503
        assert headers["Retry-After"] == "3"
        assert elapsed < TIMEOUT + SLACK

    own_redis.start()
    status, _, _ = await timed_post(client)
    assert status == 200
    check = Redis.from_url(own_redis.url)
    # The first message survived the SIGKILL (append-only file), and the last one is there.
    assert await check.xlen("gateway:events:{0}") == 2
    await check.aclose()


async def test_hung_redis_gives_503_within_the_timeout(
    make_client: MakeClient, own_redis: RedisProcess
) -> None:
    client = await make_client(redis_url=own_redis.url, redis_timeout=TIMEOUT, spool_max_bytes=1)
    assert (await timed_post(client))[0] == 200
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)  # accepts connections, never answers
    try:
        status, headers, elapsed = await timed_post(client)
        assert status == 503
        assert "Retry-After" in headers
        assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + SLACK
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    for _ in range(20):  # the connection that timed out is replaced
        if (await timed_post(client))[0] == 200:
            break
    else:
        pytest.fail("no 200 after Redis resumed")
