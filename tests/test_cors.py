"""CORS: preflights on every route, the allow headers on every answer, and credentials only
where a tracking client needs them."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.http.routes import tables
from gateway.ingest.sources import Source, Sources
from gateway.ops.embedded import free_port
from tests.helpers.gateway import MakeClient
from tests.helpers.streams import stream_messages

ORIGIN = "https://shop.example"
ASKED = "authorization,content-type"

TRACKING, OTHERS = (sorted(routes) for routes in tables())


@pytest.mark.parametrize("path", TRACKING + OTHERS)
async def test_preflight_on_every_route(client: TestClient[Any, Any], path: str) -> None:
    response = await client.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": ASKED,
        },
    )
    assert response.status == 204
    tracking = path in TRACKING
    assert response.headers["Access-Control-Allow-Origin"] == (ORIGIN if tracking else "*")
    assert ("Access-Control-Allow-Credentials" in response.headers) is tracking
    assert response.headers["Access-Control-Allow-Methods"] == "POST, GET, OPTIONS"
    assert response.headers["Access-Control-Allow-Headers"] == ASKED
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in response.headers.getall("Vary")
    assert await response.read() == b""


async def test_preflight_on_an_untidy_path(client: TestClient[Any, Any]) -> None:
    response = await client.options(
        "/v1//t/", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Access-Control-Allow-Headers" not in response.headers  # nothing was asked


async def test_success_carries_the_headers(client: TestClient[Any, Any], redis: Redis) -> None:
    response = await client.post(
        "/v1/t",
        data=b'{"event": "Clicked", "anonymousId": "a1"}',
        headers={"Origin": ORIGIN, "Content-Type": "text/plain"},
    )
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Expose-Headers"] == "Retry-After, X-Request-Id"
    assert "Origin" in response.headers.getall("Vary")
    [message] = await stream_messages(redis)
    assert message["event"] == "Clicked"
    assert message["context"]["ip"] == "127.0.0.1"  # a browser's call: its address is kept


async def test_without_origin_any_origin_is_allowed(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v1/t", json={"event": "E", "userId": "u"})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/t", b"{not json", 400),
        ("/v1/t", b'{"userId": "u", "event": "' + b"x" * 40_000 + b'"}', 413),
        ("/v1/nothing-here", b"{}", 404),
    ],
)
async def test_errors_carry_the_headers(
    client: TestClient[Any, Any], redis: Redis, path: str, body: bytes, status: int
) -> None:
    response = await client.post(path, data=body, headers={"Origin": ORIGIN})
    assert response.status == status
    # A path the gateway does not serve is no tracking route: no credentials.
    assert response.headers["Access-Control-Allow-Origin"] == ("*" if status == 404 else ORIGIN)
    assert response.headers["Access-Control-Expose-Headers"] == "Retry-After, X-Request-Id"
    assert (await response.json())["Error"]
    assert await stream_messages(redis) == []


async def test_a_refused_write_key_carries_the_headers(
    make_client: MakeClient, redis: Redis
) -> None:
    client = await make_client(Sources([Source(id="web", write_keys=["wk_1"])]))
    response = await client.post(
        "/v1/t", json={"event": "E", "userId": "u", "writeKey": "wrong"}, headers={"Origin": ORIGIN}
    )
    assert response.status == 400
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert await stream_messages(redis) == []


async def test_503_exposes_retry_after(make_client: MakeClient) -> None:
    # Redis unreachable and no room to spool: the one case that answers 503.
    client = await make_client(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout=0.3, spool_max_bytes=1
    )
    response = await client.post(
        "/v1/t", json={"event": "E", "userId": "u"}, headers={"Origin": ORIGIN}
    )
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Expose-Headers"] == "Retry-After, X-Request-Id"


@pytest.mark.parametrize("content_type", ["text/plain;charset=UTF-8", None])
async def test_browser_bodies_of_any_type(
    client: TestClient[Any, Any], redis: Redis, content_type: str | None
) -> None:
    """analytics.js posts text/plain; navigator.sendBeacon posts text/plain or nothing."""
    headers = {"Origin": ORIGIN}
    if content_type:
        headers["Content-Type"] = content_type
    batch = b'{"batch": [{"type": "page", "anonymousId": "a1", "name": "Home"}]}'
    response = await client.post(
        "/v1/b", data=batch, headers=headers, skip_auto_headers=["Content-Type"]
    )
    assert response.status == 200
    [message] = await stream_messages(redis)
    assert message["name"] == "Home"


@pytest.mark.parametrize(
    "path", ["/metrics", "/ready", "/health", "/docs", "/openapi.json", "/v1/nothing-here"]
)
async def test_no_credentials_beyond_the_tracking_routes(
    client: TestClient[Any, Any], path: str
) -> None:
    response = await client.get(path, headers={"Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize("path", ["/v1/t", "/v1//t/"])
async def test_credentials_on_a_tracking_route(client: TestClient[Any, Any], path: str) -> None:
    response = await client.post(
        path, json={"event": "E", "userId": "u"}, headers={"Origin": ORIGIN}
    )
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


async def test_no_credentials_for_origin_null(client: TestClient[Any, Any]) -> None:
    """A sandboxed frame or a file: page is `Origin: null`; any page can make itself one."""
    for method in ("POST", "OPTIONS"):
        response = await client.request(
            method, "/v1/t", json={"event": "E", "userId": "u"}, headers={"Origin": "null"}
        )
        assert response.status in (200, 204)
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize("path", ["/v1/t%0A", "/%0D%0Ax", "/a%0Ab/c"])
async def test_every_path_gets_the_json_404_with_cors(
    client: TestClient[Any, Any], path: str
) -> None:
    """aiohttp's own 404 (plain text, no CORS, uncounted) never answers, `%0A` included."""
    from yarl import URL

    response = await client.get(URL(path, encoded=True), headers={"Origin": ORIGIN})
    assert response.status == 404
    assert (await response.json())["Message"] == "No such route"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["X-Request-Id"]
