"""End to end in a real headless Chromium: analytics-next from npm, and an email-style pixel.

The test serves its own page (and the npm bundle) from one origin; the gateway listens on
another, so the browser does what it does on a real site: a CORS preflight, then `text/plain`
posts with Basic auth, to the paths analytics-next uses. No CDN is reached: the page gives
analytics-next its settings (`cdnSettings`) and the gateway's address (`apiHost`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from gateway.http.pixel import encode_data
from tests.helpers.browser import BUNDLE, KEY, Requests, landed
from tests.helpers.chromium import Chromium

pytestmark = pytest.mark.slow

TITLE = "Gateway test page"

PAGE = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{TITLE}</title>
<script src="/ajs/index.js"></script></head>
<body><h1>Shop</h1>
<script>
// Every body the page posts, to compare with what landed.
window.sent = [];
const realFetch = window.fetch;
window.fetch = function (url, init) {{
  window.sent.push({{url: String(url), body: init && init.body}});
  return realFetch.apply(this, arguments);
}};
// What a site does: load analytics-next, then the five calls, one after the other.
window.run = async function (config) {{
  const segment = {{apiKey: config.writeKey, apiHost: config.apiHost, protocol: "http"}};
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load(
    {{writeKey: config.writeKey, cdnSettings: {{integrations: {{"Segment.io": segment}}}}}},
    {{integrations: {{"Segment.io": {{...segment, deliveryStrategy: config.deliveryStrategy}}}}}}
  );
  await analytics.page("Docs", "Home", {{section: "intro"}});
  await analytics.identify("user-1", {{email: "ada@example.com", plan: "pro"}});
  await analytics.track("Clicked Buy", {{sku: "A-1", price: 12.5}});
  await analytics.group("acme", {{name: "Acme Inc", seats: 5}});
  await analytics.alias("user-2", "user-1");
  return analytics.user().anonymousId();
}};
</script></body></html>
"""


@pytest.fixture
async def site() -> AsyncIterator[str]:
    """The test's own web site: the page, the pixel page, and the npm bundle."""

    async def index(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def pixel_page(request: web.Request) -> web.Response:
        src = request.query["src"].replace('"', "&quot;")
        html = f'<!doctype html><title>Mail</title><p>Hi!</p><img id="px" src="{src}" alt="">'
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/mail.html", pixel_page)
    app.router.add_static("/ajs", BUNDLE)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.mark.parametrize(
    "strategy",
    [
        None,
        {"strategy": "batching", "config": {"size": 3, "timeout": 1000}},
    ],
    ids=["default", "batching"],
)
async def test_analytics_next_lands_every_call(
    browser: Chromium,
    gateway: tuple[str, Requests],
    site: str,
    redis: Redis,
    strategy: dict[str, Any] | None,
) -> None:
    base, answered = gateway
    page = await browser.new_page()
    await page.goto(f"{site}/")
    config: dict[str, Any] = {"writeKey": KEY, "apiHost": base.removeprefix("http://") + "/v1"}
    if strategy:
        config["deliveryStrategy"] = strategy
    anonymous_id = await page.evaluate(f"run({json.dumps(config)})")
    messages = await landed(redis, 5, page, answered)
    by_type = {m["type"]: m for m in messages}
    assert sorted(by_type) == ["alias", "group", "identify", "page", "track"]
    assert len(messages) == 5

    for message in messages:
        context = message["context"]
        assert context["library"]["name"] == "analytics.js"
        assert context["library"]["version"].startswith("next-")
        assert "HeadlessChrome" in context["userAgent"]
        assert context["page"]["url"] == f"{site}/"
        assert context["page"]["title"] == TITLE
        assert context["ip"] == "127.0.0.1"  # a browser's call: the gateway added its address
        assert context["locale"]
        assert message["anonymousId"] == anonymous_id
        assert message["_source"] == "web"
        assert "writeKey" not in message
        assert message["messageId"].startswith("ajs-")  # the browser's own id, kept
        assert message["originalTimestamp"]
        assert message["receivedAt"]

    assert by_type["page"]["name"] == "Home"
    assert by_type["page"]["category"] == "Docs"
    assert by_type["page"]["properties"]["section"] == "intro"
    assert by_type["identify"]["userId"] == "user-1"
    assert by_type["identify"]["traits"] == {"email": "ada@example.com", "plan": "pro"}
    assert by_type["track"]["event"] == "Clicked Buy"
    assert by_type["track"]["properties"] == {"sku": "A-1", "price": 12.5}
    assert by_type["track"]["userId"] == "user-1"
    assert by_type["group"]["groupId"] == "acme"
    assert by_type["group"]["traits"] == {"name": "Acme Inc", "seats": 5}
    assert by_type["alias"]["previousId"] == "user-1"
    assert by_type["alias"]["userId"]  # analytics-next 1.84 sends the current user's id here

    # Every field the browser sent reached the stream unchanged, bar the gateway's enrichment.
    sent = await page.evaluate("window.sent")
    bodies = [json.loads(call["body"]) for call in sent if call["url"].startswith(base)]
    items = [item for body in bodies for item in body.get("batch", [body])]
    assert sorted(item["messageId"] for item in items) == sorted(m["messageId"] for m in messages)
    stored = {m["messageId"]: m for m in messages}
    for item in items:
        message = stored[item["messageId"]]
        assert item.pop("writeKey") == KEY
        assert {**message["context"], "ip": None} == {**item.pop("context"), "ip": None}
        assert message["originalTimestamp"] == item.pop("timestamp")
        for field, value in item.items():
            assert message[field] == value, field

    posts = [(path, status) for method, path, status in answered if method == "POST"]
    preflights = [(path, status) for method, path, status in answered if method == "OPTIONS"]
    if strategy:
        assert set(posts) == {("/v1/b", 200)}
        # A batch of 3 sent when full; the other 2 when the timeout struck.
        assert 3 in [len(body["batch"]) for body in bodies]
        assert ("/v1/b", 204) in preflights
    else:
        assert posts == [(f"/v1/{kind}", 200) for kind in "pitga"]
        assert ("/v1/t", 204) in preflights  # Basic auth makes every call preflighted


async def test_pixel_in_a_page(
    browser: Chromium, gateway: tuple[str, Requests], site: str, redis: Redis
) -> None:
    base, answered = gateway
    data = encode_data(
        {"writeKey": KEY, "userId": "reader-9", "event": "Email Opened", "properties": {"n": 1}}
    )
    page = await browser.new_page()
    src = f"{base}/v1/pixel/track?data={data}"
    await page.goto(f"{site}/mail.html?src={src.replace('&', '%26').replace('?', '%3F')}")
    image = await page.evaluate(
        "(() => { const i = document.getElementById('px');"
        " return [i.complete, i.naturalWidth, i.naturalHeight]; })()"
    )
    assert image == [True, 1, 1]
    [message] = await landed(redis, 1, page, answered)
    assert message["type"] == "track"
    assert message["event"] == "Email Opened"
    assert message["userId"] == "reader-9"
    assert message["_source"] == "web"
    assert ("GET", "/v1/pixel/track", 200) in answered
