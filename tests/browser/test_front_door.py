"""The front door, in a real headless Chromium: SDKs that fetch their settings from the gateway.

Three ways a site loads an SDK, each given nothing but the gateway's address:
analytics-next from npm with `cdnURL`; Segment's standard snippet with its host changed (the
gateway serving analytics.js); RudderStack's v3 SDK with `configUrl` and `dataPlaneUrl`.
The five calls land, and the browser's own network log shows no request to any host but the
page's and the gateway's.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler
from redis.asyncio import Redis

from gateway.http import cors
from tests.helpers.browser import BUNDLE, HERE, KEY, MakeGateway, Requests, landed
from tests.helpers.chromium import Chromium, Page
from tests.helpers.missing import missing
from tests.helpers.streams import stream_messages

pytestmark = pytest.mark.slow

RUDDERSTACK = HERE / "node_modules" / "@rudderstack" / "analytics-js" / "dist" / "npm"
RUDDERSTACK_BUNDLED = RUDDERSTACK / "modern" / "bundled" / "umd"
"""The v3 build with its plugins inside: it loads nothing from RudderStack's CDN."""

CALLS = """
  analytics.page("Docs", "Home", {section: "intro"});
  analytics.identify("user-1", {email: "ada@example.com"});
  analytics.track("Clicked Buy", {sku: "A-1"});
  analytics.group("acme", {name: "Acme Inc"});
  analytics.alias("user-2", "user-1");
"""
"""The five calls, the same in every SDK."""

NPM_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>npm</title>
<script src="/ajs/index.js"></script></head><body><script>
window.run = async function (writeKey, cdnURL) {
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load({writeKey, cdnURL});
  THE_CALLS
};
</script></body></html>""".replace("THE_CALLS", CALLS.replace("analytics.", "await analytics."))

SNIPPET = (
    # Segment's snippet 5.2.0, as npm's @segment/snippet 5.2.1 renders it (`min()`), with
    # `https://cdn.segment.com` changed to the gateway, and `analytics._cdn` (what its
    # `useHostForBundles` option adds) because the test's gateway is plain http.
    '!function(){var i="analytics",analytics=window[i]=window[i]||[];if(!analytics.initialize)'
    'if(analytics.invoked)window.console&&console.error&&console.error("Segment snippet included'
    ' twice.");else{analytics.invoked=!0;analytics.methods=["trackSubmit","trackClick",'
    '"trackLink","trackForm","pageview","identify","reset","group","track","ready","alias",'
    '"debug","page","screen","once","off","on","addSourceMiddleware","addIntegrationMiddleware",'
    '"setAnonymousId","addDestinationMiddleware","register"];analytics.factory=function(e){'
    "return function(){if(window[i].initialized)return window[i][e].apply(window[i],arguments);"
    'var n=Array.prototype.slice.call(arguments);if(["track","screen","alias","group",'
    '"page","identify"].indexOf(e)>-1){var c=document.querySelector("link[rel=\'canonical\']");'
    'n.push({__t:"bpc",c:c&&c.getAttribute("href")||void 0,p:location.pathname,u:location.href,'
    "s:location.search,t:document.title,r:document.referrer})}n.unshift(e);analytics.push(n);"
    "return analytics}};for(var n=0;n<analytics.methods.length;n++){var key=analytics.methods[n];"
    "analytics[key]=analytics.factory(key)}analytics.load=function(key,n){var t=document."
    'createElement("script");t.type="text/javascript";t.async=!0;t.setAttribute('
    '"data-global-segment-analytics-key",i);t.src="GATEWAY/analytics.js/v1/" + key + '
    '"/analytics.min.js";var r=document.getElementsByTagName("script")[0];r.parentNode.'
    'insertBefore(t,r);analytics._loadOptions=n};analytics._writeKey="WRITE_KEY";'
    'analytics._cdn = "GATEWAY";analytics.SNIPPET_VERSION="5.2.0";\n'
    'analytics.load("WRITE_KEY");\n'
    "}}();"
)

SNIPPET_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>snippet</title>
<script>%s</script><script>%s</script></head><body></body></html>"""

RUDDERSTACK_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>rs</title>
<script src="/rs/index.js"></script></head><body><script>
window.run = function (writeKey, gateway) {
  const analytics = new rudderanalytics.RudderAnalytics();
  analytics.load(writeKey, gateway, {configUrl: gateway});
  THE_CALLS
};
</script></body></html>""".replace("THE_CALLS", CALLS)


@pytest.fixture
async def site(gateway: tuple[str, Requests]) -> AsyncIterator[str]:
    """The site of the pages, for the `gateway` fixture's gateway."""
    async with site_of(gateway[0]) as url:
        yield url


@contextlib.asynccontextmanager
async def site_of(base: str) -> AsyncIterator[str]:
    """The site: its pages for the gateway at `base`, and the npm builds it loads itself."""

    async def npm(_request: web.Request) -> web.Response:
        return web.Response(text=NPM_PAGE, content_type="text/html")

    async def snippet(request: web.Request) -> web.Response:
        code = SNIPPET.replace("GATEWAY", base).replace("WRITE_KEY", request.query["key"])
        page = SNIPPET_PAGE % (code, CALLS)
        return web.Response(text=page, content_type="text/html")

    async def rudderstack(_request: web.Request) -> web.Response:
        return web.Response(text=RUDDERSTACK_PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/npm.html", npm)
    app.router.add_get("/snippet.html", snippet)
    app.router.add_get("/rudderstack.html", rudderstack)
    app.router.add_static("/ajs", BUNDLE)
    app.router.add_static("/rs", RUDDERSTACK_BUNDLED)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


def hosts_reached(page: Page) -> set[str]:
    """Every origin the page requested, from the browser's network log."""
    return {
        f"{url.scheme}://{url.netloc}"
        for url in map(urlsplit, page.requests)
        if url.scheme not in ("data", "blob", "about")
    }


def assert_the_five_calls(messages: list[dict[str, Any]], library: str) -> None:
    by_type = {m["type"]: m for m in messages}
    assert sorted(by_type) == ["alias", "group", "identify", "page", "track"]
    assert len(messages) == 5
    assert by_type["page"]["name"] == "Home"
    assert by_type["page"]["properties"]["section"] == "intro"
    assert by_type["identify"]["userId"] == "user-1"
    assert by_type["track"]["event"] == "Clicked Buy"
    assert by_type["track"]["properties"] == {"sku": "A-1"}
    assert by_type["group"]["groupId"] == "acme"
    assert by_type["alias"]["previousId"] == "user-1"
    for message in messages:
        assert message["_source"] == "web"
        assert message["context"]["library"]["name"] == library
        assert "writeKey" not in message


async def test_npm_load_with_only_cdn_url(
    browser: Chromium, gateway: tuple[str, Requests], site: str, redis: Redis
) -> None:
    base, answered = gateway
    page = await browser.new_page()
    await page.goto(f"{site}/npm.html")
    await page.evaluate(f"run({json.dumps(KEY)}, {json.dumps(base)})")
    assert_the_five_calls(await landed(redis, 5, page, answered), "analytics.js")
    assert ("GET", f"/v1/projects/{KEY}/settings", 200) in answered
    assert hosts_reached(page) == {site, base}


async def test_standard_snippet_with_its_host_changed(
    browser: Chromium, gateway: tuple[str, Requests], site: str, redis: Redis
) -> None:
    base, answered = gateway
    page = await browser.new_page()
    await page.goto(f"{site}/snippet.html?key={KEY}")
    assert_the_five_calls(await landed(redis, 5, page, answered), "analytics.js")
    assert ("GET", f"/analytics.js/v1/{KEY}/analytics.min.js", 200) in answered
    assert ("GET", f"/v1/projects/{KEY}/settings", 200) in answered
    assert hosts_reached(page) == {site, base}
    # analytics.js took its settings host from `_cdn`, and sends no usage metrics anywhere.
    assert await page.evaluate("window.analytics.settings.cdnURL") == base
    assert not [path for _, path, _ in answered if path == "/v1/m"]


async def test_rudderstack_v3_with_config_url(
    browser: Chromium, gateway: tuple[str, Requests], site: str, redis: Redis
) -> None:
    if not (RUDDERSTACK_BUNDLED / "index.js").exists():
        missing(f"@rudderstack/analytics-js is not installed: run `npm ci` in {HERE}")
    base, answered = gateway
    page = await browser.new_page()
    await page.goto(f"{site}/rudderstack.html")
    await page.evaluate(f"run({json.dumps(KEY)}, {json.dumps(base)})")
    messages = await landed(redis, 5, page, answered)
    assert_the_five_calls(messages, "RudderLabs JavaScript SDK")
    assert ("OPTIONS", "/sourceConfig/", 204) in answered  # Basic auth: preflighted
    assert ("GET", "/sourceConfig/", 200) in answered
    assert hosts_reached(page) == {site, base}


async def test_a_429_is_retried_after_its_retry_after_through_cors(
    browser: Chromium, make_gateway: MakeGateway, redis: Redis
) -> None:
    # The gateway's first answer to a track is a 429 with `Retry-After: 1` (a rate limit);
    # analytics-next waits, and retries with `X-Retry-Count`, which its preflight must allow.
    asked: list[str] = []
    throttled: list[bool] = []

    @web.middleware
    async def throttle_once(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            asked.append(request.headers.get("Access-Control-Request-Headers", ""))
        elif request.path == "/v1/t" and not throttled:
            throttled.append(True)
            error = {"Error": "Too Many Requests", "Message": "Slow down", "Details": ""}
            response = web.json_response(error, status=429, headers={"Retry-After": "1"})
            cors.allow(request, response, credentials=True)
            return response
        return await handler(request)

    base, answered = await make_gateway(throttle_once)
    async with site_of(base) as site:
        page = await browser.new_page()
        await page.goto(f"{site}/npm.html")
        await page.evaluate(f"run({json.dumps(KEY)}, {json.dumps(base)})")
        assert_the_five_calls(await landed(redis, 5, page, answered), "analytics.js")
    assert ("POST", "/v1/t", 429) in answered
    assert ("POST", "/v1/t", 200) in answered
    assert "authorization,x-retry-count" in [a.lower() for a in asked]


@pytest.mark.parametrize("how", ["npm", "snippet"])
async def test_unknown_write_key_sends_nothing(
    browser: Chromium, gateway: tuple[str, Requests], site: str, redis: Redis, how: str
) -> None:
    base, answered = gateway
    page = await browser.new_page()
    if how == "npm":
        await page.goto(f"{site}/npm.html")
        with pytest.raises(Exception, match="Unknown or disabled writeKey"):
            await page.evaluate(f"run('wk_nobody', {json.dumps(base)})")
        assert ("GET", "/v1/projects/wk_nobody/settings", 404) in answered
    else:
        await page.goto(f"{site}/snippet.html?key=wk_nobody")
        assert ("GET", "/analytics.js/v1/wk_nobody/analytics.min.js", 404) in answered
    assert await stream_messages(redis) == []
    assert not [a for a in answered if a[0] == "POST"]
    assert hosts_reached(page) == {site, base}
