"""The writeKey: each place it is looked for, open mode and sources mode."""

from __future__ import annotations

from base64 import b64encode
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.ingest.sources import Source, Sources
from tests.helpers.gateway import MakeClient
from tests.helpers.streams import read_stream, stored, stream_messages

SOURCES = Sources(
    [
        Source(id="web", write_keys=["wk_live", "wk_old"]),
        Source(id="server", write_keys=["wk_server"]),
        Source(id="retired", write_keys=["wk_off"], enabled=False),
    ]
)
TRACK = {"userId": "u1", "event": "Order Completed"}
INVALID = {"Error": "Bad Request", "Message": "Invalid or missing writekey", "Details": ""}


def basic(user: str, password: str | None = "") -> dict[str, str]:
    credentials = user if password is None else f"{user}:{password}"
    return {"Authorization": "Basic " + b64encode(credentials.encode()).decode()}


@pytest.fixture
async def sourced(make_client: MakeClient) -> TestClient[Any, Any]:
    return await make_client(sources=SOURCES)


@pytest.mark.parametrize(
    ("headers", "body", "query", "source"),
    [
        (basic("wk_live"), {}, {}, "web"),
        (basic("wk_live", None), {}, {}, "web"),  # no trailing colon
        (basic("wk_old"), {}, {}, "web"),  # rotation: an older key of the same source
        ({}, {"writeKey": "wk_server"}, {}, "server"),
        ({}, {}, {"writeKey": "wk_live"}, "web"),
        # Order: Basic, then the body, then the query.
        (basic("wk_server"), {"writeKey": "wk_live"}, {"writeKey": "wk_live"}, "server"),
        ({}, {"writeKey": "wk_server"}, {"writeKey": "wk_live"}, "server"),
    ],
)
async def test_each_write_key_location(
    sourced: TestClient[Any, Any],
    redis: Redis,
    headers: dict[str, str],
    body: dict[str, str],
    query: dict[str, str],
    source: str,
) -> None:
    response = await sourced.post(
        "/v1/track", json={**TRACK, **body}, headers=headers, params=query
    )
    assert response.status == 200
    [stored] = await stream_messages(redis)
    assert stored["_source"] == source
    assert "writeKey" not in stored


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, {}),
        (basic("wk_unknown"), {}),
        ({}, {"writeKey": "wk_off"}),  # a disabled source
        ({"Authorization": "Basic !!!not-base64"}, {}),
        ({}, {"writeKey": ""}),
    ],
)
async def test_missing_unknown_or_disabled_key_is_refused(
    sourced: TestClient[Any, Any], redis: Redis, headers: dict[str, str], body: dict[str, str]
) -> None:
    response = await sourced.post("/v1/track", json={**TRACK, **body}, headers=headers)
    assert response.status == 400
    assert await response.json() == INVALID
    assert await stored(redis) == []


async def test_open_mode_accepts_anything_as_default(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    for headers in ({}, basic("whatever")):
        response = await client.post("/v1/t", json={**TRACK, "writeKey": "x"}, headers=headers)
        assert response.status == 200
    stored = await stream_messages(redis)
    assert [m["_source"] for m in stored] == ["default", "default"]
    assert all("writeKey" not in m for m in stored)


async def test_batch_top_level_key(sourced: TestClient[Any, Any], redis: Redis) -> None:
    response = await sourced.post(
        "/v1/batch", json={"writeKey": "wk_server", "batch": [{**TRACK, "type": "track"}]}
    )
    assert response.status == 200
    assert [m["_source"] for m in await stream_messages(redis)] == ["server"]


@pytest.mark.parametrize("path", ["/v1/batch", "/beacon/v1/batch"])
async def test_batch_body_key_beats_the_query_key(
    sourced: TestClient[Any, Any], redis: Redis, path: str
) -> None:
    body = {"writeKey": "wk_server", "batch": [{"type": "track", **TRACK}]}
    response = await sourced.post(path, json=body, params={"writeKey": "wk_live"})
    assert response.status == 200
    [stored] = await stream_messages(redis)
    assert stored["_source"] == "server"


async def test_batch_with_a_bad_request_key_is_refused_whole(
    sourced: TestClient[Any, Any], redis: Redis
) -> None:
    response = await sourced.post(
        "/v1/batch",
        json={"batch": [{**TRACK, "type": "track", "writeKey": "wk_live"}]},
        headers=basic("wk_unknown"),
    )
    assert response.status == 400
    assert await response.json() == INVALID
    assert await stored(redis) == []


async def test_batch_without_any_key_is_refused_whole(
    sourced: TestClient[Any, Any], redis: Redis
) -> None:
    response = await sourced.post("/v1/batch", json={"batch": [{**TRACK, "type": "track"}]})
    assert response.status == 400
    assert await response.json() == INVALID
    assert await stored(redis) == []


async def test_batch_item_keys_when_the_request_has_none(
    sourced: TestClient[Any, Any], redis: Redis
) -> None:
    # MetaRouter's own batch example carries the writeKey in each item.
    items = [
        {**TRACK, "type": "track", "writeKey": "wk_live"},
        {**TRACK, "type": "track", "writeKey": "wk_nope"},
        {**TRACK, "type": "track", "writeKey": "wk_server"},
    ]
    response = await sourced.post("/v1/batch", json={"batch": items})
    assert response.status == 207
    body = await response.json()
    assert body["Accepted"] == 2
    assert [(e["Index"], e["Message"]) for e in body["Errors"]] == [
        (1, "Invalid or missing writekey")
    ]
    stored = await stream_messages(redis)
    assert [m["_source"] for m in stored] == ["web", "server"]
    assert all("writeKey" not in m for m in stored)


async def test_write_key_never_reaches_redis(sourced: TestClient[Any, Any], redis: Redis) -> None:
    await sourced.post("/v1/track", json={**TRACK, "writeKey": "wk_live"})
    await sourced.post("/v1/track", json=TRACK, headers=basic("wk_live"))
    await sourced.post("/v1/track", json=TRACK, params={"writeKey": "wk_live"})
    dump = b""
    for key in await redis.keys("gateway:events:*"):
        for _id, fields in await read_stream(redis, key):
            dump += b"".join(fields.values())
    assert dump.count(b"Order Completed") == 3
    assert b"wk_live" not in dump
    assert not [key for key in await redis.keys("*") if b"wk_live" in key]
