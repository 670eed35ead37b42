"""The live inspector with real processes: `gateway serve --workers 2`, one page's feed on
the admin port, and duplicates answered by both processes (each has its own ring): the
page shows every one (docs/inspector.md, "Each process's ring")."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from redis.asyncio import Redis

from gateway.ops.embedded import RedisProcess, free_port
from tests.helpers.gateway import ADMIN_AUTH, ADMIN_TOKEN
from tests.helpers.serve import start, stop

pytestmark = pytest.mark.slow

MESSAGES = 20


def send_twice(base: str) -> None:
    """Each message twice, each on a new connection (the kernel spreads them over both
    processes)."""
    for n in range(MESSAGES):
        message = {"userId": f"u-{n}", "event": "Signed Up", "messageId": f"m-{n}"}
        for _ in range(2):
            with requests.Session() as session:
                assert session.post(base + "/v1/track", json=message, timeout=10).ok


async def test_every_process_s_duplicates_reach_one_page(
    tmp_path: Path, redis_server: RedisProcess, redis: Redis
) -> None:  # `redis`: an empty server
    public, admin = free_port(), free_port()
    args = ["serve", "--workers", "2", "--redis-url", redis_server.url, "--port", str(public)]
    args += ["--admin-port", str(admin), "--admin-token", ADMIN_TOKEN]
    args += ["--data-dir", str(tmp_path / "data")]
    served = start(args, tmp_path / "gateway.log")
    rows: list[dict[str, Any]] = []
    try:
        async with aiohttp.ClientSession(headers=ADMIN_AUTH) as session:
            deadline = time.monotonic() + 30
            while True:
                try:
                    feed = await session.get(f"http://127.0.0.1:{admin}/v1/inspector/feed")
                    break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline, (tmp_path / "gateway.log").read_text()
                    await asyncio.sleep(0.2)
            assert feed.status == 200

            async def read() -> None:
                name = ""
                async for line in feed.content:
                    if line.startswith(b"event: "):
                        name = line[7:].strip().decode()
                    elif line.startswith(b"data: ") and name == "row":
                        rows.append(json.loads(line[6:]))

            reading = asyncio.create_task(read())
            await asyncio.sleep(2.0)  # both processes have read the watching flag
            await asyncio.to_thread(send_twice, f"http://127.0.0.1:{public}")
            deadline = time.monotonic() + 10
            while sum(r["outcome"] == "duplicate" for r in rows) < MESSAGES:
                assert time.monotonic() < deadline, rows
                await asyncio.sleep(0.1)
            reading.cancel()
    finally:
        assert stop(served) == 0
    duplicates = sorted(r["messageId"] for r in rows if r["outcome"] == "duplicate")
    accepted = sorted(r["messageId"] for r in rows if r["outcome"] == "accepted")
    assert duplicates == accepted == sorted(f"m-{n}" for n in range(MESSAGES))
