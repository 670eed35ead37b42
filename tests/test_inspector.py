"""The live inspector's feed and ring, in process: a real Redis, real sockets.

What a page sees: each message with its outcome and reason (accepted, refused, duplicate,
an oversized batch item, suppressed), filtered as asked, the last minutes on opening; the
token on the page and the feed, nothing on the public port; the ring costs nothing while
no page is open."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from bench.inspector_load import open_pages
from gateway.constants import INSPECT_STREAM, INSPECT_WATCHING, events_key, redrive_key
from gateway.ingest.sources import Source, Sources
from gateway.store.entry import Entry
from gateway.store.inspector_ring import Ring
from tests.helpers.gateway import ADMIN_TOKEN, MakeClient, admin_of
from tests.helpers.streams import read_stream

Row = dict[str, Any]
KEY = "wk_web"


def web() -> Sources:
    return Sources([Source(id="web", write_keys=[KEY])])


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(key, "")}


async def rows(admin: TestClient[Any, Any], query: str = "") -> AsyncIterator[tuple[str, Any]]:
    """The feed's events, (name, data), as they come."""
    response = await admin.get(f"/v1/inspector/feed{query}")
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    name = ""
    async for line in response.content:
        text = line.decode().rstrip("\n")
        if text.startswith("event: "):
            name = text[7:]
        elif text.startswith("data: "):
            yield name, json.loads(text[6:])
    response.close()


async def backfill(admin: TestClient[Any, Any], query: str) -> list[Row]:
    """The rows a page opened with `query` shows at once (the last minutes' matches)."""
    shown: list[Row] = []
    async for name, data in rows(admin, query):
        if name == "ready":
            return shown
        if name == "row":
            shown.append(data)
    raise AssertionError("the feed ended before its backfill")


async def opened(
    admin: TestClient[Any, Any], query: str = ""
) -> tuple[asyncio.Task[None], list[Row]]:
    """A feed read in the background once its backfill is done; its rows so far."""
    live: list[Row] = []
    ready = asyncio.Event()

    async def read() -> None:
        async for name, data in rows(admin, query):
            if name == "ready":
                ready.set()
            elif name == "row" and ready.is_set():
                live.append(data)

    task = asyncio.create_task(read())
    await asyncio.wait_for(ready.wait(), 5)
    await asyncio.sleep(1.2)  # every process has read the watching flag
    return task, live


async def until(live: list[Row], count: int, seconds: float = 2.5) -> None:
    deadline = time.monotonic() + seconds
    while len(live) < count:
        assert time.monotonic() < deadline, live
        await asyncio.sleep(0.05)


async def test_each_outcome_arrives_with_its_reason(make_client: MakeClient) -> None:
    client = await make_client(web(), max_batch_items=10, max_message_bytes=2_000)
    admin = admin_of(client)
    task, live = await opened(admin)
    try:
        track = {"userId": "u-1", "event": "Signed Up", "messageId": "m-ok"}
        assert (await client.post("/v1/track", json=track, headers=auth())).status == 200
        assert (await client.post("/v1/track", json=track, headers=auth())).status == 200
        bad = {**track, "messageId": "m-bad"}
        refused = await client.post("/v1/track", json=bad, headers=auth("wk_nope"))
        assert refused.status == 400
        big = {
            "type": "track",
            "userId": "u-2",
            "event": "Big",
            "messageId": "m-big",
            "properties": {"blob": "x" * 3_000},
        }
        small = {"type": "track", "userId": "u-2", "event": "Small", "messageId": "m-small"}
        batch = await client.post("/v1/batch", json={"batch": [small, big]}, headers=auth())
        assert batch.status == 207
        await until(live, 5)
    finally:
        task.cancel()
    seen = {(row.get("messageId"), row["outcome"]) for row in live}
    assert ("m-ok", "accepted") in seen
    assert ("m-ok", "duplicate") in seen
    assert ("m-small", "accepted") in seen
    assert ("m-big", "refused") in seen
    by_outcome = {row["outcome"]: row for row in live if row.get("messageId") in ("m-ok", "m-big")}
    assert "larger than 2000 bytes" in by_outcome["refused"]["reason"]
    assert by_outcome["accepted"]["userId"] == "u-1"
    assert by_outcome["accepted"]["source"] == "web"
    assert json.loads(by_outcome["accepted"]["data"])["event"] == "Signed Up"
    # A Basic key is refused before the body is read: the route and reason, no messageId.
    assert any(
        row["outcome"] == "refused"
        and row["route"] == "/v1/track"
        and "writekey" in row["reason"].lower()
        for row in live
    ), live


async def test_a_filter_shows_only_its_rows_and_the_last_minutes(make_client: MakeClient) -> None:
    client = await make_client(web())
    for user in ("alice", "bob", "alice"):
        message = {"userId": user, "event": "Viewed"}
        assert (await client.post("/v1/track", json=message, headers=auth())).status == 200
    admin = admin_of(client)
    task, live = await opened(admin, "?userId=bob")
    await client.post("/v1/track", json={"anonymousId": "bob", "event": "Late"}, headers=auth())
    await client.post("/v1/track", json={"userId": "carol", "event": "Late"}, headers=auth())
    await until(live, 1)
    await asyncio.sleep(0.5)
    task.cancel()
    assert [row["event"] for row in live] == ["Late"]
    shown = await backfill(admin, "?userId=alice&type=track")
    assert [row["userId"] for row in shown] == ["alice", "alice"]


async def test_without_the_token_401_and_on_the_public_port_404(make_client: MakeClient) -> None:
    client = await make_client()
    admin = admin_of(client)
    base = admin.make_url("")
    async with aiohttp.ClientSession() as bare:
        for path in ("/", "/v1/inspector/feed", "/inspector/inspector.js", "/v1/inspector/groups"):
            assert (await bare.get(base.with_path(path))).status == 401, path
            assert (await client.get(path)).status == 404, path
    page = await admin.get("/")
    assert page.status == 200
    assert "Gateway inspector" in await page.text()
    script = await admin.get("/inspector/inspector.js")
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert (await admin.get("/inspector/other.js")).status == 404


async def test_the_test_event_lands_in_redis(make_client: MakeClient, redis: Redis) -> None:
    client = await make_client(web())
    admin = admin_of(client)
    answer = await admin.post("/v1/inspector/test-event", json={"source": "web"})
    assert answer.status == 201, await answer.text()
    sent = await answer.json()
    stored = [json.loads(f[b"data"]) for _, f in await read_stream(redis, events_key(0))]
    assert [m["messageId"] for m in stored] == [sent["messageId"]]
    assert stored[0]["event"] == "Inspector Test Event"
    assert (await admin.post("/v1/inspector/test-event", json={"source": "no"})).status == 404


async def test_groups_and_a_redrive_asked(make_client: MakeClient, redis: Redis) -> None:
    client = await make_client()
    admin = admin_of(client)
    await client.post("/v1/track", json={"userId": "u", "event": "E"})
    await redis.xgroup_create(events_key(0), "crm", id="0")
    await redis.xadd("gateway:dead:{crm}", {"data": b"{}", "source": "default"})
    groups = (await (await admin.get("/v1/inspector/groups")).json())["groups"]
    assert groups == [
        {
            "group": "crm",
            "consumers": 0,
            "pending": 0,
            "lag": 1,
            "deadLetters": 1,
            "redriveAsked": False,
            "lastRedrive": None,
        }
    ]
    assert (await admin.post("/v1/inspector/groups/crm/redrive")).status == 202
    assert await redis.exists(redrive_key("crm"))
    assert (await admin.post("/v1/inspector/groups/other/redrive")).status == 404


async def test_the_ring_notes_nothing_unless_watched(redis: Redis) -> None:
    ring = Ring(window=3600)
    entry = Entry(events_key(0), b'{"userId": "u", "messageId": "m"}', "web", "m", "/v1/track")
    await ring.flush(redis)
    assert ring.watching is False
    await redis.set(INSPECT_WATCHING, b"1", ex=5)
    await ring.flush(redis)
    assert ring.watching is True
    ring.note("throttled", [entry], "over the limit")
    await ring.flush(redis)
    [(_, fields)] = await read_stream(redis, INSPECT_STREAM)
    assert fields[b"outcome"] == b"throttled"
    assert fields[b"userId"] == b"u"
    assert fields[b"reason"] == b"over the limit"


@pytest.mark.parametrize("watched", [False, True])
async def test_a_suppressed_message_is_shown_while_watched(
    make_client: MakeClient, redis: Redis, watched: bool
) -> None:
    client = await make_client()
    admin = admin_of(client)
    create = {"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": ["gone"]}
    assert (await admin.post("/v1/regulations", json=create)).status in (200, 201)
    if watched:
        await redis.set(INSPECT_WATCHING, b"1", ex=5)
    await asyncio.sleep(1.3)  # the suppression and the flag are read
    sent = {"userId": "gone", "event": "E", "writeKey": "wk_in_the_body_1234"}
    assert (await client.post("/v1/track", json=sent)).status == 200
    await asyncio.sleep(1.3)
    noted = await read_stream(redis, INSPECT_STREAM)
    assert [f[b"outcome"] for _, f in noted] == ([b"suppressed"] if watched else [])
    # Dropped before enrichment, which removes the key: the ring must not keep it either.
    assert not any(b"wk_in_the_body" in value for _, f in noted for value in f.values())


async def test_the_load_script_keeps_pages_open(make_client: MakeClient) -> None:
    client = await make_client()
    admin = admin_of(client)
    url = str(admin.make_url(""))
    opened = asyncio.create_task(open_pages(url, ADMIN_TOKEN, 3, 2.5))
    await asyncio.sleep(1.0)
    assert (await client.post("/v1/track", json={"userId": "u", "event": "E"})).status == 200
    results = await opened
    assert [r.disconnected for r in results] == [None, None, None]
    assert all(r.rows == 1 and r.stats >= 1 for r in results), results


async def test_the_admin_listener_stops_at_once_with_a_page_open(make_client: MakeClient) -> None:
    client = await make_client()
    admin = admin_of(client)
    feed = await admin.get("/v1/inspector/feed")
    await feed.content.readline()  # open, and not read any more: a page left open
    start = time.monotonic()
    await admin.close()
    assert time.monotonic() - start < 5  # not aiohttp's 60 s wait for the feed's handler
    feed.close()
