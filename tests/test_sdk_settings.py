"""What SDKs fetch before they send: analytics.js's settings, RudderStack's source config,
the first-party analytics.js files, and analytics.js's usage metrics (`/v1/m`)."""

from __future__ import annotations

import base64
import gzip
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.http.app_keys import METRICS
from gateway.ingest.sources import Source, Sources
from gateway.settings import Settings, SettingsError
from tests.helpers.gateway import MakeClient
from tests.helpers.streams import stream_messages

KEY = "wk_web_1"
SOURCES = Sources(
    [
        Source(
            id="web",
            write_keys=[KEY],
            plan={"track": {"Signed Up": {"enabled": True}}},
            consent_settings={"allCategories": ["Analytics"], "hasUnmappedDestinations": False},
        ),
        Source(id="off", write_keys=["wk_off"], enabled=False),
    ]
)


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


async def test_settings_send_everything_here_and_nowhere_else(make_client: MakeClient) -> None:
    client = await make_client(sources=SOURCES)
    response = await client.get(f"/v1/projects/{KEY}/settings", headers={"Origin": "https://a.io"})
    assert response.status == 200
    host = f"{client.host}:{client.port}"
    assert await response.json() == {
        "integrations": {
            "Segment.io": {"apiKey": KEY, "apiHost": f"{host}/v1", "protocol": "http"}
        },
        "metrics": {"sampleRate": 0, "host": f"{host}/v1"},
        "remotePlugins": [],
        "enabledMiddleware": {},
        "plan": {"track": {"Signed Up": {"enabled": True}}},
        "consentSettings": {"allCategories": ["Analytics"], "hasUnmappedDestinations": False},
    }
    assert response.headers["Cache-Control"] == "public, max-age=60"
    assert response.headers["Access-Control-Allow-Origin"] == "https://a.io"
    # The mobile SDKs' path, and an untidy one, give the same settings.
    for path in (f"/projects/{KEY}/settings", f"/v1//projects/{KEY}/settings/"):
        again = await client.get(path)
        assert await again.json() == await response.json(), path


async def test_settings_etag_answers_304(client: TestClient[Any, Any]) -> None:
    first = await client.get("/v1/projects/anything/settings")
    etag = first.headers["ETag"]
    second = await client.get("/v1/projects/anything/settings", headers={"If-None-Match": etag})
    assert second.status == 304
    other = await client.get("/v1/projects/another/settings", headers={"If-None-Match": etag})
    assert other.status == 200  # another writeKey, another document


@pytest.mark.parametrize("key", ["wk_unknown", "wk_off"])
async def test_unknown_or_disabled_write_key_is_404(make_client: MakeClient, key: str) -> None:
    client = await make_client(sources=SOURCES)
    for path in (f"/v1/projects/{key}/settings", f"/analytics.js/v1/{key}/analytics.min.js"):
        response = await client.get(path)
        assert response.status == 404, path
        assert (await response.json())["Message"] == "Unknown or disabled writeKey"
    response = await client.get("/sourceConfig/", params={"writeKey": key})
    assert response.status == 404


async def test_open_mode_gives_settings_for_any_key(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/projects/whatever/settings")
    body = await response.json()
    assert body["integrations"]["Segment.io"]["apiKey"] == "whatever"
    assert body["plan"] == {}
    assert "consentSettings" not in body


async def test_public_url_wins(make_client: MakeClient) -> None:
    client = await make_client(public_url="https://t.example.com/")
    response = await client.get("/v1/projects/wk/settings")
    segment = (await response.json())["integrations"]["Segment.io"]
    assert (segment["apiHost"], segment["protocol"]) == ("t.example.com/v1", "https")
    assert "Vary" not in response.headers or "X-Forwarded-Host" not in response.headers["Vary"]


async def test_forwarded_host_only_from_trusted_proxies(make_client: MakeClient) -> None:
    forwarded = {"X-Forwarded-Host": "t.example.com, inner", "X-Forwarded-Proto": "https"}
    untrusted = await make_client()
    trusted = await make_client(trusted_proxies="127.0.0.1/32")
    plain = await (await untrusted.get("/v1/projects/wk/settings", headers=forwarded)).json()
    assert plain["integrations"]["Segment.io"]["apiHost"] == f"127.0.0.1:{untrusted.port}/v1"
    assert plain["integrations"]["Segment.io"]["protocol"] == "http"
    response = await trusted.get("/v1/projects/wk/settings", headers=forwarded)
    believed = (await response.json())["integrations"]["Segment.io"]
    assert (believed["apiHost"], believed["protocol"]) == ("t.example.com/v1", "https")
    assert "X-Forwarded-Host" in response.headers["Vary"]
    bad = await trusted.get("/v1/projects/wk/settings", headers={"X-Forwarded-Host": "a/b"})
    assert bad.status == 400


async def test_rudderstack_source_config(make_client: MakeClient) -> None:
    client = await make_client(sources=SOURCES)
    # As the v3 SDK asks: the writeKey in the query, and Basic auth (so it was preflighted).
    preflight = await client.options(
        "/sourceConfig/",
        headers={
            "Origin": "https://shop.io",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Headers"] == "authorization"
    query = {"p": "npm", "v": "3.34.1", "writeKey": KEY}
    response = await client.get("/sourceConfig/", params=query, headers=basic(KEY))
    assert response.status == 200
    source = (await response.json())["source"]
    assert source["id"] == "web"
    assert source["enabled"] is True
    assert source["destinations"] == []
    assert isinstance(source["config"], dict)
    by_basic = await client.get("/sourceConfig", headers=basic(KEY))
    assert (await by_basic.json())["source"]["id"] == "web"


async def test_analytics_js_served_from_the_build(make_client: MakeClient, tmp_path: Path) -> None:
    build = tmp_path / "umd"
    build.mkdir()
    script = b"/* analytics.js */" * 100
    (build / "standalone.js").write_bytes(script)
    (build / "standalone.js.gz").write_bytes(gzip.compress(script))
    (build / "ajs-destination.bundle.abc123.js").write_text("chunk")
    (tmp_path / "secret.js").write_text("not served")
    client = await make_client(sources=SOURCES, analytics_js=build)

    response = await client.get(f"/analytics.js/v1/{KEY}/analytics.min.js")
    assert response.status == 200
    assert response.headers["Content-Encoding"] == "gzip"  # aiohttp's client asks for it
    assert await response.read() == script
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert "javascript" in response.headers["Content-Type"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    again = await client.get(
        f"/analytics.js/v1/{KEY}/analytics.min.js",
        headers={"If-None-Match": response.headers["ETag"]},
    )
    assert again.status == 304

    chunk = await client.get("/analytics-next/bundles/ajs-destination.bundle.abc123.js")
    assert (chunk.status, await chunk.text()) == (200, "chunk")
    assert chunk.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    for name in ("missing.bundle.js", "..%2Fsecret.js", "%2E%2E%2Fsecret.js", "standalone.txt"):
        refused = await client.get(f"/analytics-next/bundles/{name}")
        assert refused.status == 404, name


async def test_no_build_configured_is_404(client: TestClient[Any, Any]) -> None:
    response = await client.get("/analytics.js/v1/wk/analytics.min.js")
    assert response.status == 404
    assert "--analytics-js" in (await response.json())["Details"]


async def test_usage_metrics_are_counted_not_stored(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    series = [
        {"type": "Counter", "metric": "analytics_js.invoke", "value": 1, "tags": {"a": "b"}},
        {"type": "Counter", "metric": "analytics_js.invoke.error", "value": 1, "tags": {}},
    ]
    response = await client.post(
        "/v1/m", json={"series": series}, headers={"Content-Type": "text/plain"}
    )
    assert response.status == 200
    assert await stream_messages(redis) == []
    metrics = client.app[METRICS]
    metrics.push()
    assert metrics.registry.get_sample_value("gateway_sdk_metrics_total") == 2
    assert (await client.post("/v1/m", data=b"{")).status == 400


async def test_preflight_allows_what_analytics_next_sends(client: TestClient[Any, Any]) -> None:
    asked = "authorization,content-type,x-retry-count"
    response = await client.options(
        "/v1/t",
        headers={
            "Origin": "https://shop.io",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": asked,
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Headers"] == asked


def test_public_url_must_be_a_url() -> None:
    assert (
        Settings.load(environ={"GATEWAY_PUBLIC_URL": "https://t.io/"}).public_url == "https://t.io"
    )
    with pytest.raises(SettingsError, match="GATEWAY_PUBLIC_URL"):
        Settings.load(environ={"GATEWAY_PUBLIC_URL": "t.io"})


def test_sources_file_carries_plan_and_consent_settings(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(
        '[[source]]\nid = "web"\nwrite_keys = ["wk"]\n'
        '[source.plan.track."Signed Up"]\nenabled = false\n'
        '[source.consent_settings]\nallCategories = ["Analytics"]\n'
    )
    source = Sources.from_file(path).resolve("wk")
    assert source is not None
    assert source.plan == {"track": {"Signed Up": {"enabled": False}}}
    assert source.consent_settings == {"allCategories": ["Analytics"]}
