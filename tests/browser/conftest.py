"""Fixtures of the browser tests: Chromium, and gateways in sources mode serving analytics.js."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from gateway.app import RUNNER_OPTIONS, create_app
from gateway.ingest.sources import Source, Sources
from gateway.ops.embedded import RedisProcess
from gateway.settings import Settings
from tests.helpers.browser import BUNDLE, HERE, KEY, Gateway, MakeGateway, Requests
from tests.helpers.chromium import INSTALL_HINT, Chromium, find_binary, launch
from tests.helpers.missing import missing


@pytest.fixture
def chromium_binary() -> str:
    binary = find_binary()
    if binary is None:
        missing(INSTALL_HINT)
    assert binary is not None
    if not (BUNDLE / "index.js").exists():
        missing(f"@segment/analytics-next is not installed: run `npm ci` in {HERE}")
    return binary


@pytest.fixture
async def browser(chromium_binary: str, tmp_path: Path) -> AsyncIterator[Chromium]:
    async with launch(chromium_binary, tmp_path / "profile") as chromium:
        yield chromium


@pytest.fixture
async def make_gateway(
    redis: Redis, redis_server: RedisProcess, tmp_path: Path
) -> AsyncIterator[MakeGateway]:
    """Start gateways in sources mode serving the npm build of analytics.js, each with the
    aiohttp `middlewares` given (a fault to inject); closed on the way out."""
    settings = Settings.load(
        environ={}, redis_url=redis_server.url, data_dir=tmp_path / "data", analytics_js=BUNDLE
    )
    servers: list[TestServer] = []

    async def make(*middlewares: Any) -> Gateway:
        app = create_app(settings, Sources([Source(id="web", write_keys=[KEY])]))
        app.middlewares.extend(middlewares)
        answered: Requests = []

        async def record(request: web.Request, response: web.StreamResponse) -> None:
            answered.append((request.method, request.path, response.status))

        app.on_response_prepare.append(record)
        server = TestServer(app)
        await server.start_server(**RUNNER_OPTIONS)
        servers.append(server)
        return str(server.make_url("")).rstrip("/"), answered

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def gateway(make_gateway: MakeGateway) -> Gateway:
    """A gateway in sources mode serving the npm build of analytics.js."""
    return await make_gateway()
