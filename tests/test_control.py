"""The admin listener in process: its token, sources and keys through its API, and every
gateway on the same Redis applying a change (docs/admin.md). Real processes: test_admin.py."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, CookieJar, encode_basic_auth
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.control import token
from gateway.control.live import LiveSources
from gateway.control.polled import POLL
from gateway.ingest.sources import Source, Sources
from gateway.settings import Settings, SettingsError
from tests.helpers.gateway import ADMIN_TOKEN, MakeClient, admin_of
from tests.helpers.streams import stream_messages

TRACK = {"userId": "u1", "event": "Signed Up"}
SHOP = "/track/acme/shop"
EVENT = {"event_name": "search", "user": {"id": "12345"}}
"""A Commanders Act event."""
INTILERY_TRACK = {"userId": "u1", "event": "Product Added"}


async def track(client: TestClient[Any, Any], key: str) -> int:
    headers = {"Authorization": encode_basic_auth(key, "")}
    response = await client.post("/v1/track", json=TRACK, headers=headers)
    return response.status


async def call(
    client: TestClient[Any, Any], method: str, path: str, body: Any = None, status: int = 200
) -> Any:
    response = await admin_of(client).request(method, path, json=body)
    assert response.status == status, await response.text()
    return None if status == 204 else await response.json()


async def test_the_admin_listener_wants_its_token(client: TestClient[Any, Any]) -> None:
    base = str(admin_of(client).make_url("")).rstrip("/")
    async with ClientSession() as session:  # without the admin client's Authorization
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
            for path in ("/v1/sources", "/metrics", "/openapi.json", "/", "/nowhere"):
                async with session.get(base + path, headers=headers) as answer:
                    assert answer.status == 401, path
                    assert (await answer.json())["Message"] == "Unauthorized"
                    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        async with session.get(base + "/?token=wrong") as answer:
            assert answer.status == 401
            assert "gateway_admin" not in answer.cookies


async def test_the_printed_url_gives_a_browser_a_session_cookie(
    client: TestClient[Any, Any],
) -> None:
    base = str(admin_of(client).make_url("")).rstrip("/")
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as browser:  # an IP's cookies
        url = f"{base}/?token={ADMIN_TOKEN}"
        async with browser.get(url, allow_redirects=False) as answer:
            assert answer.status == 303
            assert answer.headers["Location"] == "/"  # the token is not kept in the URL
            cookie = answer.headers["Set-Cookie"]
            assert "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie
            assert ADMIN_TOKEN not in cookie
        async with browser.get(base + "/v1/sources") as answer:
            assert answer.status == 200
            assert (await answer.json())["mode"] == "open"


async def test_admin_and_public_routes_stay_apart(client: TestClient[Any, Any]) -> None:
    for path in ("/v1/sources", "/metrics"):
        assert (await client.get(path)).status == 404
    assert (await client.post("/v1/sources", json={"id": "web"})).status == 404
    admin = admin_of(client)
    assert (await admin.post("/v1/track", json=TRACK)).status == 404
    assert (await admin.get("/health")).status == 404
    document = await (await admin.get("/openapi.json")).json()
    assert "/v1/sources/{id}/keys/{keyId}/rotate" in document["paths"]
    assert "/metrics" in document["paths"]
    assert "/v1/track" not in document["paths"]
    public = await (await client.get("/openapi.json")).json()
    assert not [p for p in public["paths"] if p.startswith("/v1/sources") or p == "/metrics"]


async def test_public_metrics_only_when_asked(make_client: MakeClient) -> None:
    client = await make_client(public_metrics=True)
    assert (await client.get("/metrics")).status == 200


async def test_a_source_and_its_keys_through_the_api(client: TestClient[Any, Any]) -> None:
    assert await track(client, "anything") == 200  # open mode
    source = await call(client, "POST", "/v1/sources", {"id": "web"}, 201)
    assert source == {
        "id": "web",
        "enabled": True,
        "origin": "api",
        "readOnly": False,
        "keys": [],
        "createdAt": source["createdAt"],
    }
    assert await track(client, "anything") == 400  # sources mode, in force at once here
    made = await call(client, "POST", "/v1/sources/web/keys", {"kind": "write_key"}, 201)
    key = made["key"]
    assert key.startswith("wk_")
    assert len(key) > 30
    assert await track(client, key) == 200
    listed = await call(client, "GET", "/v1/sources")
    assert listed["mode"] == "sources"
    [shown] = listed["sources"][0]["keys"]
    assert shown["id"] == made["id"]
    assert shown["key"] == f"wk_…{key[-4:]}"
    assert key not in str(listed)

    await call(client, "PATCH", "/v1/sources/web", {"enabled": False})
    assert await track(client, key) == 400
    await call(client, "PATCH", "/v1/sources/web", {"enabled": True})
    assert await track(client, key) == 200

    new = await call(client, "POST", f"/v1/sources/web/keys/{made['id']}/rotate", {}, 201)
    assert new["replaces"] == made["id"]
    assert await track(client, key) == 400  # no grace: the old key stops now
    assert await track(client, new["key"]) == 200
    await call(client, "DELETE", f"/v1/sources/web/keys/{new['id']}", status=204)
    assert await track(client, new["key"]) == 400
    await call(client, "DELETE", f"/v1/sources/web/keys/{new['id']}", status=404)


async def test_a_rotated_key_works_for_its_grace_then_stops(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await call(client, "POST", "/v1/sources", {"id": "web"}, 201)
    old = await call(client, "POST", "/v1/sources/web/keys", {"kind": "write_key"}, 201)
    new = await call(
        client, "POST", f"/v1/sources/web/keys/{old['id']}/rotate", {"graceSeconds": 1}, 201
    )
    assert [await track(client, k) for k in (old["key"], new["key"])] == [200, 200]
    [listed] = (await call(client, "GET", "/v1/sources"))["sources"]
    assert {k["id"]: "expiresAt" in k for k in listed["keys"]} == {
        old["id"]: True,
        new["id"]: False,
    }
    await asyncio.sleep(1.1)
    assert [await track(client, k) for k in (old["key"], new["key"])] == [400, 200]
    # The next rotation forgets the records whose grace is over.
    third = await call(client, "POST", f"/v1/sources/web/keys/{new['id']}/rotate", {}, 201)
    fields = await redis.hkeys("gateway:control:{sources}")
    assert sorted(fields) == [f"key:{third['id']}".encode(), b"source:web"]


@pytest.mark.parametrize(
    ("path", "body", "status", "said"),
    [
        ("/v1/sources", {"id": "has space"}, 400, "$.id"),
        ("/v1/sources", {"id": "web", "colour": "red"}, 400, "colour"),
        ("/v1/sources", b"not json", 400, "JSON"),
        ("/v1/sources/web/keys", {"kind": "password"}, 400, "$.kind"),
        ("/v1/sources/web/keys", {"kind": "commanders_act"}, 400, "site_id"),
        ("/v1/sources/web/keys", {"kind": "intilery", "client": "acme"}, 400, "account"),
        ("/v1/sources/nope/keys", {"kind": "write_key"}, 404, "nope"),
        ("/v1/sources/file/keys", {"kind": "write_key"}, 409, "sources file"),
        ("/v1/sources", {"id": "file"}, 409, "sources file"),
    ],
)
async def test_what_the_api_refuses(
    make_client: MakeClient, path: str, body: Any, status: int, said: str
) -> None:
    client = await make_client(Sources([Source(id="file", write_keys=["wk_file_0001"])]))
    await call(client, "POST", "/v1/sources", {"id": "web"}, 201)
    admin = admin_of(client)
    data = body if isinstance(body, bytes) else None
    answer = await admin.post(path, json=None if data else body, data=data)
    assert answer.status == status
    error = await answer.json()
    assert said in error["Details"] or said in error["Message"], error


async def test_file_sources_are_listed_read_only(make_client: MakeClient) -> None:
    client = await make_client(Sources([Source(id="file", write_keys=["wk_file_0001"])]))
    listed = await call(client, "GET", "/v1/sources")
    assert listed == {
        "mode": "sources",
        "sources": [
            {
                "id": "file",
                "enabled": True,
                "origin": "file",
                "readOnly": True,
                "keys": [{"kind": "write_key", "key": "wk_…0001"}],
            }
        ],
    }
    await call(client, "PATCH", "/v1/sources/file", {"enabled": False}, 409)
    await call(client, "POST", "/v1/sources", {"id": "web"}, 201)
    assert await track(client, "wk_file_0001") == 200  # both serve: one table


async def test_commanders_act_and_intilery_keys(client: TestClient[Any, Any], redis: Redis) -> None:
    await call(client, "POST", "/v1/sources", {"id": "tc"}, 201)
    tc = await call(
        client, "POST", "/v1/sources/tc/keys", {"kind": "commanders_act", "site_id": 29}, 201
    )
    assert tc["siteId"] == "29"
    answer = await client.post("/events", params={"tc_s": "29", "token": tc["key"]}, json=EVENT)
    assert answer.status == 200
    await call(
        client, "POST", "/v1/sources/tc/keys", {"kind": "commanders_act", "siteId": "30"}, 409
    )

    await call(client, "POST", "/v1/sources", {"id": "shop"}, 201)
    body = {"kind": "intilery", "client": "acme", "account": "shop", "brand": "SHOP"}
    intilery = await call(client, "POST", "/v1/sources/shop/keys", body, 201)
    headers = {"auth-token": intilery["key"]}
    answer = await client.post(
        "/track/acme/shop/SHOP/v1/track", json=INTILERY_TRACK, headers=headers
    )
    assert answer.status == 200, await answer.text()
    answer = await client.post(
        "/track/acme/shop/OUTLET/v1/track", json=INTILERY_TRACK, headers=headers
    )
    assert answer.status == 403  # a key of one brand
    await call(client, "POST", "/v1/sources", {"id": "other"}, 201)
    await call(client, "POST", "/v1/sources/other/keys", body, 409)  # the account is shop's
    assert {m["_source"] for m in await stream_messages(redis)} == {"tc", "shop"}


async def test_every_gateway_on_the_same_redis_applies_a_change_within_a_second(
    make_client: MakeClient,
) -> None:
    first, second = await make_client(), await make_client()
    await call(first, "POST", "/v1/sources", {"id": "web"}, 201)
    made = await call(first, "POST", "/v1/sources/web/keys", {"kind": "write_key"}, 201)
    began = time.monotonic()
    while [await track(second, k) for k in (made["key"], "wk_unknown")] != [200, 400]:
        assert time.monotonic() - began < 1, "not in force on the other gateway within 1s"
        await asyncio.sleep(0.05)
    listed = await call(second, "GET", "/v1/sources")
    assert [k["id"] for k in listed["sources"][0]["keys"]] == [made["id"]]
    assert POLL <= 0.25


async def test_redis_keeps_only_digests(client: TestClient[Any, Any], redis: Redis) -> None:
    await call(client, "POST", "/v1/sources", {"id": "web"}, 201)
    made = await call(client, "POST", "/v1/sources/web/keys", {"kind": "write_key"}, 201)
    stored = str(await redis.hgetall("gateway:control:{sources}"))
    assert made["id"] in stored
    assert made["key"] not in stored
    assert made["key"][3:] not in stored


def test_a_token_is_made_once_and_kept_private(tmp_path: Path) -> None:
    made, new = token.ensure(None, tmp_path / "data")
    assert new
    assert len(made) >= 40
    path = tmp_path / "data" / token.TOKEN_FILE
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert token.ensure(None, tmp_path / "data") == (made, False)
    assert token.ensure("configured-token-0123", tmp_path / "x") == ("configured-token-0123", False)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "admin.example.com"])
def test_a_reachable_admin_listener_needs_a_configured_token(host: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not a loopback address: set --admin-token"):
        Settings.load(environ={}, admin_host=host, data_dir=tmp_path)
    Settings.load(environ={}, admin_host=host, admin_token="t" * 16, data_dir=tmp_path)
    for loopback in ("127.0.0.1", "::1", "localhost"):
        Settings.load(environ={}, admin_host=loopback, data_dir=tmp_path)


def test_an_empty_or_half_written_sources_file_leaves_the_sources_in_force(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sources.toml"
    path.write_text('[[source]]\nid = "web"\nwrite_keys = ["wk_web_0123"]\n')
    live = LiveSources(path, Sources.from_file(path))
    path.write_text("")  # what `open(path, "w")` leaves before the write
    assert live.reload_file("it changed") is False
    assert live.table.resolve("wk_web_0123") is not None
    path.write_text('[[source]]\nid = "web"\nwrite_keys = ["wk_web_0123"')  # cut short
    assert live.reload_file("it changed") is False
    assert live.table.resolve("wk_web_0123") is not None
