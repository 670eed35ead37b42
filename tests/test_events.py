"""`GET /v1/events/{messageId}` and `GET /v1/deliveries` on the admin listener: one message
followed from acceptance through real workers and HTTP destinations to dead letters, and
refused messages named with their reason. A real Redis, real sockets."""

from __future__ import annotations

import asyncio
import collections
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
import yarl
from aiohttp import encode_basic_auth
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.cli import main
from gateway.constants import dead_letter_key, events_key
from gateway.store import refusals
from gateway.worker.consumer import Consumer
from gateway.worker.destinations.http import HttpDestination
from gateway.worker.dispatch import Dispatcher
from gateway.worker.options import ConsumerOptions
from tests.helpers.destinations import Collector
from tests.helpers.gateway import ADMIN_TOKEN, MakeClient, admin_of
from tests.helpers.streams import read_stream

Event = dict[str, Any]


async def lookup(admin: TestClient[Any, Any], message_id: str, status: int = 200) -> Event:
    answer = await admin.get(f"/v1/events/{message_id}")
    assert answer.status == status, await answer.text()
    body: Event = await answer.json()
    return body


async def until(
    admin: TestClient[Any, Any], message_id: str, done: Callable[[Event], bool]
) -> Event:
    """Ask again until `done` holds for the answer (a worker or a write is under way)."""
    deadline = time.monotonic() + 20
    while True:
        answer = await admin.get(f"/v1/events/{message_id}")
        event: Event = await answer.json() if answer.status == 200 else {}
        if done(event):
            return event
        assert time.monotonic() < deadline, f"still {answer.status} {event}"
        await asyncio.sleep(0.05)


def consumer(redis: Redis, group: str, url: str, **options: Any) -> Consumer:
    destination = HttpDestination(group, url, retries=0, backoff=0.01)
    settings = {"block": 0.05, "reclaim_idle": 1.0, "max_attempts": 3, **options}
    return Consumer(
        redis,
        ConsumerOptions(group, "c1", (events_key(0),), **settings),
        Dispatcher([destination]),
    )


def totals(rows: list[Event]) -> dict[tuple[str, str, str], collections.Counter[str]]:
    out: dict[tuple[str, str, str], collections.Counter[str]] = collections.defaultdict(
        collections.Counter
    )
    for row in rows:
        kinds = ("delivered", "retried", "failed", "dead")
        out[row["group"], row["destination"], row["source"]].update({k: row[k] for k in kinds})
    return out


async def test_one_message_from_acceptance_through_delivery_and_500s_to_dead_letters(
    make_client: MakeClient, redis: Redis
) -> None:
    client = await make_client()
    admin = admin_of(client)
    ok, down = Collector(), Collector()
    down.fail_next = 1_000  # the CRM answers 500 to everything
    ok_url, down_url = await ok.start(), await down.start()
    warehouse = consumer(redis, "warehouse", ok_url, burst=True)
    crm = consumer(redis, "crm", down_url)
    try:
        body = {"userId": "u-1", "event": "Signed Up", "messageId": "m-followed"}
        assert (await client.post("/v1/track", json=body)).status == 200

        # Accepted: where it is and what was stored; no group reads the stream yet.
        event = await lookup(admin, "m-followed")
        [(entry_id, _)] = await read_stream(redis, events_key(0))
        assert event["messageId"] == "m-followed"
        assert (event["source"], event["route"]) == ("default", "/v1/track")
        assert (event["stream"], event["partition"]) == (events_key(0), 0)
        assert event["entryId"] == entry_id.decode()
        assert event["message"]["event"] == "Signed Up"
        assert event["receivedAt"] == event["message"]["receivedAt"]
        assert event["groups"] == {}

        await warehouse.create_groups()
        await crm.create_groups()
        groups = (await lookup(admin, "m-followed"))["groups"]
        assert groups == {g: {"status": "pending", "attempts": 0} for g in ("warehouse", "crm")}

        # The warehouse takes it.
        await asyncio.wait_for(warehouse.run(asyncio.Event()), 20)
        assert ok.ids() == ["m-followed"]
        groups = (await lookup(admin, "m-followed"))["groups"]
        assert groups["warehouse"] == {"status": "delivered"}

        # The CRM answers 500: pending, with its attempts and the error; then dead.
        stop = asyncio.Event()
        running = asyncio.create_task(crm.run(stop))
        try:
            event = await until(
                admin, "m-followed", lambda e: "error" in e.get("groups", {}).get("crm", {})
            )
            crm_status = event["groups"]["crm"]
            assert (crm_status["status"], crm_status["attempts"]) == ("pending", 1)
            assert "crm: HTTP 500" in crm_status["error"], crm_status

            event = await until(
                admin, "m-followed", lambda e: e["groups"]["crm"]["status"] != "pending"
            )
        finally:
            stop.set()
            await running
        [(letter_id, _)] = await read_stream(redis, dead_letter_key("crm"))
        crm_status = event["groups"]["crm"]
        assert crm_status["status"] == "dead"
        assert crm_status["attempts"] == 3
        assert crm_status["deadLetterId"] == letter_id.decode()
        assert "crm: HTTP 500" in crm_status["error"]
        assert event["groups"]["warehouse"] == {"status": "delivered"}
        # Delivered or dead, no error is left waiting for a retry.
        assert await redis.hlen("gateway:deliveries:retrying:{crm}") == 0

        # Trimmed from the stream: the message goes, the dead letter stays.
        await redis.xdel(events_key(0), entry_id)
        event = await lookup(admin, "m-followed")
        assert event["message"] is None
        assert event["receivedAt"] is None
        assert event["groups"]["warehouse"] == {"status": "trimmed"}
        assert event["groups"]["crm"]["status"] == "dead"

        # The deliveries of the last hour, per group, destination and source.
        answer = await admin.get("/v1/deliveries")
        assert answer.status == 200
        found = await answer.json()
        assert found["minutes"] == 60
        counted = {where: dict(+counts) for where, counts in totals(found["deliveries"]).items()}
        assert counted == {
            ("warehouse", "warehouse", "default"): {"delivered": 1},
            ("crm", "crm", "default"): {"failed": 3, "retried": 2, "dead": 1},
        }
        assert all(row["minute"].endswith(":00.000Z") for row in found["deliveries"])
        only = await (await admin.get("/v1/deliveries?destination=crm&minutes=5")).json()
        assert {row["destination"] for row in only["deliveries"]} == {"crm"}
    finally:
        for closing in (warehouse.dispatcher, crm.dispatcher, ok, down):
            await closing.close()


async def test_a_refused_message_is_named_with_its_reason(make_client: MakeClient) -> None:
    client = await make_client()
    admin = admin_of(client)
    # No userId nor anonymousId: the contract's 400.
    refused = await client.post("/v1/track", json={"event": "E", "messageId": "m-refused"})
    assert refused.status == 400
    said = await refused.json()

    event = await until(admin, "m-refused", lambda e: bool(e))

    assert event["refused"] == f"{said['Message']}: {said['Details']}"
    assert (event["messageId"], event["route"], event["source"]) == ("m-refused", "/v1/track", None)
    assert event["at"].endswith("Z")


async def test_a_batch_names_its_refused_items_and_finds_its_accepted_ones(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    admin = admin_of(client)
    batch = {
        "batch": [
            {"type": "track", "userId": "u", "event": "E", "messageId": "m-good"},
            {"type": "track", "userId": "u", "messageId": "m-bad"},  # no event
            {"type": "nonsense", "userId": "u", "messageId": "m-worse"},
        ]
    }
    answer = await client.post("/v1/batch", json=batch)
    assert answer.status == 207, await answer.text()

    good = await lookup(admin, "m-good")
    bad = await until(admin, "m-bad", lambda e: bool(e))
    worse = await until(admin, "m-worse", lambda e: bool(e))

    assert good["route"] == "/v1/batch"
    assert good["message"]["event"] == "E"
    assert "$.batch[1]" in bad["refused"]
    assert bad["route"] == "/v1/batch"
    assert "$.batch[2]" in worse["refused"]


async def test_a_batch_refused_whole_names_each_item(make_client: MakeClient) -> None:
    client = await make_client(sources=None, partitions=2)
    admin = admin_of(client)
    # Sources mode: a source with a key exists, and this batch has none.
    made = await admin.post("/v1/sources", json={"id": "web"})
    assert made.status == 201
    batch = {"batch": [{"type": "track", "userId": "u", "event": "E", "messageId": "m-nokey"}]}
    assert (await client.post("/v1/batch", json=batch)).status == 400

    event = await until(admin, "m-nokey", lambda e: bool(e))
    assert event["refused"].lower().startswith("invalid or missing writekey")


async def test_any_message_id_is_found(client: TestClient[Any, Any]) -> None:
    admin = admin_of(client)
    for message_id in ("a/b c", "ümlaut?x=1#y", "%2F"):
        body = {"userId": "u", "event": "E", "messageId": message_id}
        assert (await client.post("/v1/track", json=body)).status == 200
        path = "/v1/events/" + urllib.parse.quote(message_id, safe="")
        answer = await admin.get(yarl.URL(path, encoded=True))
        assert answer.status == 200, (message_id, await answer.text())
        assert (await answer.json())["messageId"] == message_id


async def test_a_message_id_of_two_sources_is_kept_for_each_and_the_newest_answered(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    admin = admin_of(client)
    keys = {}
    for source in ("web", "ios"):
        assert (await admin.post("/v1/sources", json={"id": source})).status == 201
        made = await admin.post(f"/v1/sources/{source}/keys", json={"kind": "write_key"})
        keys[source] = (await made.json())["key"]
    body = {"userId": "u", "event": "E", "messageId": "m-both"}
    for source in ("web", "ios"):
        headers = {"Authorization": encode_basic_auth(keys[source], "")}
        assert (await client.post("/v1/track", json=body, headers=headers)).status == 200

    event = await lookup(admin, "m-both")
    [_, (newer, _)] = await read_stream(redis, event["stream"])
    assert (event["source"], event["entryId"]) == ("ios", newer.decode())
    fields = {f async for key in redis.scan_iter("gateway:seen:*") for f in await redis.hkeys(key)}
    assert fields == {b"web:m-both", b"ios:m-both"}
    # A disabled source is still searched: its messages are still in the streams.
    assert (await admin.patch("/v1/sources/ios", json={"enabled": False})).status == 200
    assert (await lookup(admin, "m-both"))["source"] == "ios"


async def test_a_message_never_seen_is_404(client: TestClient[Any, Any]) -> None:
    answer = await lookup(admin_of(client), "m-never", status=404)
    assert answer["Message"] == "No such event"


async def test_deliveries_refuses_a_bad_minutes(client: TestClient[Any, Any]) -> None:
    for minutes in ("0", "121", "x"):
        answer = await admin_of(client).get(f"/v1/deliveries?minutes={minutes}")
        assert answer.status == 400


async def test_the_event_routes_need_the_token(client: TestClient[Any, Any]) -> None:
    admin = admin_of(client)
    for path in ("/v1/events/m-1", "/v1/deliveries"):
        answer = await admin.get(path, headers={"Authorization": "Bearer wrong-token-000000"})
        assert answer.status == 401
        assert (await client.get(path)).status == 404  # not on the public port
    document = await (await admin.get("/openapi.json")).json()
    assert {"/v1/events/{messageId}", "/v1/deliveries"} <= set(document["paths"])


async def test_refusals_in_redis_are_bounded(redis: Redis) -> None:
    noted = refusals.Refusals()
    for n in range(refusals.BUFFER + 5):
        noted.note(f"m-{n}" + "x" * 1_000, "why" * 1_000, "/v1/track", "2026-12-02T00:00:00Z")
    # No messageId to read: kept for the live inspector, bounded alike (here the buffer is full).
    noted.note(42, "not a string", "/v1/track", "2026-12-02T00:00:00Z")
    assert noted.dropped == 6
    await noted.write(redis)
    rows = await read_stream(redis, "gateway:refused")
    assert len(rows) == refusals.BUFFER
    assert all(len(v) <= 4 * refusals.MAX_FIELD for _, f in rows for v in f.values())


async def test_a_refusal_without_a_message_id_is_kept_and_never_found(redis: Redis) -> None:
    noted = refusals.Refusals()
    noted.note(None, "Invalid writeKey", "/v1/track", "2026-12-02T00:00:00Z")
    await noted.write(redis)
    [(_, fields)] = await read_stream(redis, "gateway:refused")
    assert (fields[b"messageId"], fields[b"reason"]) == (b"", b"Invalid writeKey")
    assert await refusals.find(redis, "") is None


async def test_gateway_event_prints_a_summary_and_json(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client()
    admin = admin_of(client)
    body = {"userId": "u-1", "event": "Signed Up", "messageId": "m-cli"}
    assert (await client.post("/v1/track", json=body)).status == 200
    flags = ["--admin-url", str(admin.make_url("")), "--admin-token", ADMIN_TOKEN]

    # The CLI blocks on its call: run it off the loop that serves the admin listener.
    assert await asyncio.to_thread(main, ["event", "m-cli", *flags]) == 0
    text = capsys.readouterr().out
    assert "m-cli: accepted at " in text
    assert "on /v1/track, source default" in text
    assert f"stored in {events_key(0)} as " in text
    assert '"event":"Signed Up"' in text

    assert await asyncio.to_thread(main, ["event", "m-cli", "--json", *flags]) == 0
    assert '"entryId"' in capsys.readouterr().out

    assert await asyncio.to_thread(main, ["event", "m-nowhere", *flags]) == 1
    assert "404 No such event" in capsys.readouterr().err
