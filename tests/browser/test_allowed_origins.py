"""A source's `allowed_origins` in a real headless Chromium: analytics-next on an allowed
origin lands its calls; the same writeKey on a page of another origin is refused with the
contract's 400, which the page can read (the CORS headers are on the refusal)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from gateway.app import RUNNER_OPTIONS, create_app
from gateway.ingest.sources import Source, Sources
from gateway.ops.embedded import RedisProcess
from gateway.settings import Settings
from tests.browser.test_analytics_js import PAGE
from tests.helpers.browser import BUNDLE, KEY, landed
from tests.helpers.chromium import Chromium
from tests.helpers.streams import stream_messages

pytestmark = pytest.mark.slow

MakeSite = Callable[[], Awaitable[str]]

READ_REFUSAL = """(async () => {
  const response = await fetch(%s, {
    method: "POST",
    headers: {"Content-Type": "text/plain", "Authorization": "Basic " + btoa(%s + ":")},
    body: JSON.stringify({userId: "u", event: "Copied"}),
  });
  return {status: response.status, body: await response.json()};
})()"""


@pytest.fixture
async def make_site() -> AsyncIterator[MakeSite]:
    """Web sites (each its own origin: another port) serving the analytics.js page."""
    servers: list[TestServer] = []

    async def make() -> str:
        async def index(_request: web.Request) -> web.Response:
            return web.Response(text=PAGE, content_type="text/html")

        app = web.Application()
        app.router.add_get("/", index)
        app.router.add_static("/ajs", BUNDLE)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield make
    for server in servers:
        await server.close()


async def test_only_allowed_origins_may_send(
    browser: Chromium,
    make_site: MakeSite,
    redis: Redis,
    redis_server: RedisProcess,
    tmp_path: Path,
) -> None:
    shop, copycat = await make_site(), await make_site()
    settings = Settings.load(environ={}, redis_url=redis_server.url, data_dir=tmp_path / "data")
    source = Source(id="web", write_keys=[KEY], allowed_origins=[shop])
    server = TestServer(create_app(settings, Sources([source])))
    await server.start_server(**RUNNER_OPTIONS)
    try:
        base = str(server.make_url("")).rstrip("/")
        config = {"writeKey": KEY, "apiHost": base.removeprefix("http://") + "/v1"}

        page = await browser.new_page()
        await page.goto(f"{shop}/")
        await page.evaluate(f"run({json.dumps(config)})")
        messages = await landed(redis, 5, page, [])
        assert {m["context"]["page"]["url"] for m in messages} == {f"{shop}/"}

        other = await browser.new_page()
        await other.goto(f"{copycat}/")
        refusal = await other.evaluate(
            READ_REFUSAL % (json.dumps(f"{base}/v1/track"), json.dumps(KEY))
        )
        assert refusal == {
            "status": 400,
            "body": {
                "Error": "Bad Request",
                "Message": "Origin not allowed",
                "Details": f"{copycat} may not send to this source",
            },
        }
        # analytics-next itself on the copycat page: its calls are refused, none lands.
        await other.evaluate(
            f"Promise.race([run({json.dumps(config)}), new Promise(r => setTimeout(r, 3000))])"
        )
        assert len(await stream_messages(redis)) == 5
    finally:
        await server.close()
