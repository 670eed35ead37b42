"""Gateways on real sockets, in front of a given Redis: what the `make_client` fixtures start."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from gateway.app import RUNNER_OPTIONS, create_admin_app, create_app
from gateway.ingest.sources import Sources
from gateway.settings import Settings

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]
"""`await make(sources=None, **settings)`: a started gateway's client."""
ADMIN_TOKEN = "test-admin-token-0123456789"
"""The admin token of the gateways the fixtures start (and of `gateway serve` in tests)."""
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
_ADMINS: dict[int, TestClient[Any, Any]] = {}


def admin_of(client: TestClient[Any, Any]) -> TestClient[Any, Any]:
    """The admin listener of a gateway `gateway_clients` started; its calls carry the token."""
    return _ADMINS[id(client)]


@contextlib.asynccontextmanager
async def gateway_clients(redis_url: str, data_dir: Path) -> AsyncIterator[MakeClient]:
    """Gateways on real sockets, on `redis_url` unless told otherwise; closed on the way out."""
    clients: list[TestClient[Any, Any]] = []

    async def make(sources: Sources | None = None, **overrides: Any) -> TestClient[Any, Any]:
        overrides.setdefault("redis_url", redis_url)
        overrides.setdefault("data_dir", data_dir)
        # Tests send load from one address, 127.0.0.1: no per-address budget unless a test
        # asks for one (as the benchmark harness, docs/security.md).
        overrides.setdefault("address_rate", 0)
        overrides.setdefault("admin_token", ADMIN_TOKEN)
        settings = Settings.load(environ={}, **overrides)
        server = TestServer(create_app(settings, sources))
        await server.start_server(**RUNNER_OPTIONS)
        client = TestClient(server)
        await client.start_server()
        clients.append(client)
        admin = TestClient(TestServer(create_admin_app(server.app)), headers=ADMIN_AUTH)
        await admin.start_server()
        clients.append(admin)
        _ADMINS[id(client)] = admin
        return client

    try:
        yield make
    finally:
        for client in reversed(clients):  # each admin listener before its gateway
            _ADMINS.pop(id(client), None)
            await client.close()
