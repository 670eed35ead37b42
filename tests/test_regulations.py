"""Regulations in process: suppression and no-track enforced at ingest, the API's answers
and refusals, every gateway on the same Redis applying a change (docs/regulations.md).
Real processes and workers: test_regulations_processes.py."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.constants import events_key
from gateway.ingest.enrich import Arrival
from gateway.ingest.suppression import Table
from gateway.ingest.validate import validate
from gateway.store.regulation_records import member
from tests.helpers.gateway import MakeClient, admin_of
from tests.helpers.streams import stream_messages


async def regulate(
    client: TestClient[Any, Any], kind: str, *ids: str, status: int = 200, **more: Any
) -> Any:
    body = {"regulationType": kind, "subjectType": "USER_ID", "subjectIds": list(ids), **more}
    answer = await admin_of(client).post("/v1/regulations", json=body)
    assert answer.status == status, await answer.text()
    return await answer.json()


async def users(redis: Redis) -> list[Any]:
    return [m.get("userId") or m.get("anonymousId") for m in await stream_messages(redis)]


async def send_all(client: TestClient[Any, Any], user: str) -> None:
    """A track, a batch, a webhook, a pixel, Intilery's track and a Commanders Act event
    for `user`: each answers success."""
    answers = [
        await client.post("/v1/track", json={"userId": user, "event": "Viewed"}),
        await client.post("/v1/batch", json={"batch": [{"type": "page", "userId": user}]}),
        await client.post("/v1/webhook", json={"type": "identify", "userId": user}),
    ]
    data = base64.b64encode(json.dumps({"userId": user, "event": "Opened"}).encode()).decode()
    answers.append(await client.get("/v1/pixel/track", params={"data": data}))
    intilery = await client.post(
        "/track/acme/shop/SHOP/v1/track",
        json={"userId": user, "event": "Product Added"},
        headers={"auth-token": "tok_any"},
    )
    answers += [
        intilery,
        await client.post("/events", json={"event_name": "buy", "user": {"id": user}}),
    ]
    for answer in answers:
        assert answer.status == 200, await answer.text()
    uuid.UUID((await intilery.json())["eventId"])  # as for an accepted message


async def test_a_suppressed_user_is_answered_and_never_stored(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    created = await regulate(client, "SUPPRESS_ONLY", "u1")
    assert set(created["data"]) == {"regulateId"}
    await send_all(client, "u1")
    await send_all(client, "u2")
    assert await users(redis) == ["u2"] * 6
    metrics = await (await admin_of(client).get("/metrics")).text()
    assert 'gateway_messages_dropped_total{reason="suppressed"} 6.0' in metrics

    await regulate(client, "UNSUPPRESS", "u1")
    await send_all(client, "u1")
    assert (await users(redis)).count("u1") == 6


async def test_no_track_drops_tracks_and_browser_identifies(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await regulate(client, "NO_TRACK", "u1")
    browser = {"Origin": "https://shop.example"}
    for path, body, headers in [
        ("/v1/track", {"userId": "u1", "event": "Viewed"}, {}),
        ("/v1/page", {"userId": "u1"}, {}),
        ("/v1/identify", {"userId": "u1", "traits": {"via": "browser"}}, browser),
        ("/v1/identify", {"userId": "u1", "traits": {"via": "server"}}, {}),
        ("/v1/track", {"userId": "u2", "event": "Viewed"}, {}),
    ]:
        answer = await client.post(path, json=body, headers=headers)
        assert answer.status == 200
    landed = await stream_messages(redis)
    assert [(m["userId"], m["type"]) for m in landed] == [("u1", "identify"), ("u2", "track")]
    assert landed[0]["traits"] == {"via": "server"}

    await regulate(client, "TRACK", "u1")
    await client.post("/v1/track", json={"userId": "u1", "event": "Viewed"})
    assert (await stream_messages(redis))[-1]["userId"] == "u1"


async def test_anonymous_ids_and_a_source_scope(make_client: MakeClient, redis: Redis) -> None:
    client = await make_client()
    body = {"regulationType": "SUPPRESS_ONLY", "subjectType": "ANONYMOUS_ID"}
    answer = await admin_of(client).post(
        "/v1/regulations", json={**body, "subjectIds": ["a1"], "sourceId": "default"}
    )
    assert answer.status == 200
    missing = await admin_of(client).post(
        "/v1/regulations", json={**body, "subjectIds": ["a1"], "sourceId": "nowhere"}
    )
    assert missing.status == 404
    for anonymous in ("a1", "a2"):
        await client.post("/v1/track", json={"anonymousId": anonymous, "event": "E"})
    await client.post("/v1/track", json={"userId": "a1", "event": "E"})  # a user id, not anon
    assert await users(redis) == ["a2", "a1"]


async def test_every_gateway_applies_a_regulation_within_a_second(
    make_client: MakeClient, redis: Redis
) -> None:
    first, second = await make_client(), await make_client()
    await regulate(first, "SUPPRESS_ONLY", "u1")
    began = time.monotonic()
    while True:
        await redis.delete(events_key(0))
        await second.post("/v1/track", json={"userId": "u1", "event": "E"})
        if not await users(redis):
            break  # dropped: the second gateway read the change
        assert time.monotonic() - began < 1.0
        await asyncio.sleep(0.05)


async def test_delete_only_needs_a_suppressed_subject(client: TestClient[Any, Any]) -> None:
    refused = await regulate(client, "DELETE_ONLY", "u1", "u2", status=409)
    assert "u1, u2" in refused["Details"]
    await regulate(client, "SUPPRESS_ONLY", "u1")
    refused = await regulate(client, "DELETE_ONLY", "u1", "u2", status=409)
    assert refused["Details"].endswith("not suppressed: u2")
    await regulate(client, "DELETE_ONLY", "u1")


async def test_bad_requests_say_why(client: TestClient[Any, Any]) -> None:
    too_many = [f"u{n}" for n in range(5001)]
    answer = await regulate(client, "SUPPRESS_ONLY", *too_many, status=400)
    assert "subjectIds" in answer["Details"]
    answer = await regulate(client, "FORGET", "u1", status=400)
    assert "regulationType" in answer["Details"]
    assert (await admin_of(client).get("/v1/regulations/nope")).status == 404
    assert (await admin_of(client).get("/v1/regulations?status=DONE")).status == 400


async def test_status_list_and_paging(client: TestClient[Any, Any]) -> None:
    ids = [
        (await regulate(client, "SUPPRESS_ONLY", f"u{n}"))["data"]["regulateId"] for n in (1, 2, 3)
    ]
    access = (await regulate(client, "ACCESS", "u1"))["data"]["regulateId"]
    one = await (await admin_of(client).get(f"/v1/regulations/{ids[0]}")).json()
    regulation = one["data"]["regulation"]
    assert regulation["overallStatus"] == "FINISHED"
    assert [s["name"] for s in regulation["stores"]] == ["suppression"]
    page = await (await admin_of(client).get("/v1/regulations?pagination.count=2")).json()
    assert [r["id"] for r in page["data"]["regulations"]] == [access, ids[2]]
    assert page["data"]["pagination"]["totalEntries"] == 4
    cursor = page["data"]["pagination"]["next"]
    rest = await (
        await admin_of(client).get(f"/v1/regulations?pagination.count=2&pagination.cursor={cursor}")
    ).json()
    assert [r["id"] for r in rest["data"]["regulations"]] == [ids[1], ids[0]]
    assert rest["data"]["pagination"]["next"] is None
    waiting = await (await admin_of(client).get("/v1/regulations?status=INITIALIZED")).json()
    assert [r["id"] for r in waiting["data"]["regulations"]] == [access]
    early = await admin_of(client).get(f"/v1/regulations/{access}/download")
    assert early.status == 409


def test_the_compact_table_finds_exactly_its_subjects() -> None:
    suppressed = [member(None, "USER_ID", f"user-{n}") for n in range(100_000)]
    scoped = [member("shop", "ANONYMOUS_ID", "a-1"), member(None, "USER_ID", "42")]
    table = Table(1, suppressed + scoped, [member(None, "USER_ID", "quiet")])
    arrival = Arrival(received_at=datetime.now(UTC))

    def reason(kind: str = "track", source: str = "web", **ids: Any) -> str | None:
        view = validate({**ids, "event": "E"}, kind, "$")
        return table.verdict(view, kind, arrival, source)

    assert all(reason(userId=f"user-{n}") == "suppressed" for n in range(0, 100_000, 997))
    assert [reason(userId=f"user-{n}") for n in range(100_000, 101_000)] == [None] * 1000
    assert reason(userId=42) == "suppressed"  # a number, as the id's text
    assert reason(anonymousId="a-1", source="shop") == "suppressed"
    assert reason(anonymousId="a-1", source="web") is None
    assert reason(userId="quiet") == "no_track"
    assert reason("identify", userId="quiet") is None
    assert table.nbytes < 2_000_000
