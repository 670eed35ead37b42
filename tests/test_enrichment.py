"""What the gateway adds: ids, timestamps and clock-skew correction, batch defaults, the IP."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.ops import timestamps
from tests.helpers.gateway import MakeClient
from tests.helpers.streams import stream_messages

TRACK = {"userId": "u1", "event": "E"}
ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def one(client: TestClient[Any, Any], redis: Redis, body: dict[str, Any], **kw: Any) -> Any:
    response = await client.post("/v1/track", json=body, **kw)
    assert response.status == 200, await response.text()
    [stored] = await stream_messages(redis)
    return stored


async def test_message_id_generated_or_kept(client: TestClient[Any, Any], redis: Redis) -> None:
    await client.post("/v1/track", json=TRACK)
    await client.post("/v1/track", json={**TRACK, "messageId": "client-id-1"})
    await client.post("/v1/track", json={**TRACK, "messageId": None})
    generated, kept, null = await stream_messages(redis)
    assert uuid.UUID(generated["messageId"]).version == 4
    assert kept["messageId"] == "client-id-1"
    assert uuid.UUID(null["messageId"]).version == 4


async def test_received_at_is_the_gateway_clock(client: TestClient[Any, Any], redis: Redis) -> None:
    before = datetime.now(UTC)
    stored = await one(client, redis, TRACK)
    after = datetime.now(UTC)
    assert ISO_MS_Z.match(stored["receivedAt"])
    received = parse(stored["receivedAt"])
    assert before - timedelta(milliseconds=1) <= received <= after
    # No client timestamp: the event happened when it arrived.
    assert stored["timestamp"] == stored["receivedAt"]
    assert "originalTimestamp" not in stored


async def test_clock_skew_correction(client: TestClient[Any, Any], redis: Redis) -> None:
    # The client's clock is 1 hour fast; the event happened 2.5 s before it was sent.
    body = {
        **TRACK,
        "timestamp": "2030-01-01T10:59:57.500Z",
        "sentAt": "2030-01-01T11:00:00.000Z",
    }
    stored = await one(client, redis, body)
    received = parse(stored["receivedAt"])
    assert stored["originalTimestamp"] == "2030-01-01T10:59:57.500Z"
    assert ISO_MS_Z.match(stored["timestamp"])
    assert parse(stored["timestamp"]) == received - timedelta(seconds=2.5)
    assert stored["sentAt"] == "2030-01-01T11:00:00.000Z"


@pytest.mark.parametrize(
    ("timestamp", "sent_at", "elapsed"),
    [
        ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:03Z", timedelta(seconds=3)),
        ("2024-05-01T10:00:00.000001Z", "2024-05-01T10:00:00.250001Z", timedelta(seconds=0.25)),
        ("2024-05-01T10:00:00.123456-05:30", "2024-05-01T15:30:01.123456Z", timedelta(seconds=1)),
        ("2024-05-01T10:00:00", "2024-05-01T10:00:00.5", timedelta(seconds=0.5)),  # no offset: UTC
    ],
)
async def test_skew_arithmetic_with_offsets_and_precision(
    client: TestClient[Any, Any], redis: Redis, timestamp: str, sent_at: str, elapsed: timedelta
) -> None:
    stored = await one(client, redis, {**TRACK, "timestamp": timestamp, "sentAt": sent_at})
    expected = parse(stored["receivedAt"]) - elapsed
    # Output is in milliseconds: allow the truncation of the microseconds.
    assert abs(parse(stored["timestamp"]) - expected) < timedelta(milliseconds=1)
    assert stored["originalTimestamp"] == timestamp


def test_corrected_is_exact() -> None:
    received = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    sent = datetime(2024, 1, 1, 13, 0, 10, tzinfo=UTC)
    original = datetime(2024, 1, 1, 13, 0, 0, 500000, tzinfo=UTC)
    assert timestamps.corrected(received, sent, original) == datetime(
        2024, 1, 1, 11, 59, 50, 500000, tzinfo=UTC
    )
    assert timestamps.iso(datetime(2024, 1, 1, 11, 59, 50, 500999, tzinfo=UTC)) == (
        "2024-01-01T11:59:50.500Z"
    )


def test_received_is_the_clock_to_the_millisecond_with_its_iso_form() -> None:
    before = datetime.now(UTC)
    moment, text = timestamps.received()
    after = datetime.now(UTC)
    assert moment.tzinfo is UTC
    assert moment.microsecond % 1000 == 0
    assert before - timedelta(milliseconds=1) < moment <= after
    assert text == timestamps.iso(moment)
    # Within one millisecond, every request gets the same pair (it is made once).
    pairs = {timestamps.received() for _ in range(1000)}
    assert all(text == timestamps.iso(moment) for moment, text in pairs)
    assert len(pairs) < 1000


@pytest.mark.parametrize("path", ["/v1/track", "/v1/batch"])
async def test_skew_beyond_the_calendar_falls_back_to_received_at(
    client: TestClient[Any, Any], redis: Redis, path: str
) -> None:
    # Clocks 9,998 years apart: the correction overflowed and answered 500.
    message = {**TRACK, "sentAt": "0001-01-01T00:00:00Z", "timestamp": "9999-12-31T23:59:59Z"}
    body = {"batch": [{**message, "type": "track"}]} if path == "/v1/batch" else message
    response = await client.post(path, json=body)
    assert response.status == 200, await response.text()
    [stored] = await stream_messages(redis)
    assert stored["timestamp"] == stored["receivedAt"]
    assert stored["originalTimestamp"] == "9999-12-31T23:59:59Z"


async def test_timestamp_without_sent_at_is_kept(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    # A historical import: nothing to correct it by, so it stays as the client sent it.
    stored = await one(client, redis, {**TRACK, "timestamp": "2015-11-10T00:45:23.412Z"})
    assert stored["timestamp"] == "2015-11-10T00:45:23.412Z"
    assert stored["originalTimestamp"] == "2015-11-10T00:45:23.412Z"


async def test_rudderstack_original_timestamp_is_kept_and_used(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    body = {
        **TRACK,
        "originalTimestamp": "2024-05-01T10:00:00.000Z",
        "sentAt": "2024-05-01T10:00:04.000Z",
    }
    stored = await one(client, redis, body)
    assert stored["originalTimestamp"] == "2024-05-01T10:00:00.000Z"
    assert parse(stored["timestamp"]) == parse(stored["receivedAt"]) - timedelta(seconds=4)


async def test_rudder_sdk_node_keeps_the_callers_timestamp(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    # The body rudder-sdk-node 3.0.13 posts for `track({..., timestamp})`, a backfill: its
    # own clock as `originalTimestamp` and `sentAt`, the caller's event time as `timestamp`.
    now = timestamps.iso(datetime.now(UTC))
    item = {
        **TRACK,
        "timestamp": "2020-01-02T03:04:05.678Z",
        "type": "track",
        "context": {"library": {"name": "analytics-node", "version": "3.0.13"}},
        "channel": "server",
        "_metadata": {"nodeVersion": "20.20.2"},
        "originalTimestamp": now,
        "messageId": str(uuid.uuid4()),
        "sentAt": now,
    }
    response = await client.post(
        "/v1/batch", json={"batch": [item], "timestamp": now, "sentAt": now}
    )
    assert response.status == 200
    [stored] = await stream_messages(redis)
    assert stored["timestamp"] == "2020-01-02T03:04:05.678Z"
    assert stored["originalTimestamp"] == now


async def test_batch_merges_context_integrations_and_sent_at(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    body = {
        "sentAt": "2024-05-01T10:00:10.000Z",
        "context": {"library": {"name": "analytics-python"}, "locale": "en-US"},
        "integrations": {"All": False, "Mixpanel": True},
        "batch": [
            {**TRACK, "type": "track", "timestamp": "2024-05-01T10:00:00.000Z"},
            {
                **TRACK,
                "type": "track",
                "context": {"locale": "fr-FR", "page": {"path": "/"}},
                "integrations": {"Mixpanel": False},
                "sentAt": "2024-05-01T10:00:01.000Z",
                "timestamp": "2024-05-01T10:00:00.000Z",
            },
        ],
    }
    response = await client.post("/v1/batch", json=body)
    assert response.status == 200
    first, second = await stream_messages(redis)
    assert first["context"] == {"library": {"name": "analytics-python"}, "locale": "en-US"}
    assert first["integrations"] == {"All": False, "Mixpanel": True}
    assert first["sentAt"] == "2024-05-01T10:00:10.000Z"
    assert parse(first["timestamp"]) == parse(first["receivedAt"]) - timedelta(seconds=10)
    # The item's own keys win.
    assert second["context"] == {
        "library": {"name": "analytics-python"},
        "locale": "fr-FR",
        "page": {"path": "/"},
    }
    assert second["integrations"] == {"All": False, "Mixpanel": False}
    assert second["sentAt"] == "2024-05-01T10:00:01.000Z"
    assert parse(second["timestamp"]) == parse(second["receivedAt"]) - timedelta(seconds=1)


async def test_ip_from_browser_requests(client: TestClient[Any, Any], redis: Redis) -> None:
    await client.post("/v1/track", json=TRACK, headers={"Origin": "https://shop.example"})
    await client.post(
        "/v1/track",
        json={**TRACK, "context": {"page": {"path": "/"}}},
        headers={"Origin": "https://shop.example"},
    )
    await client.post(
        "/v1/track",
        json={**TRACK, "context": {"ip": "203.0.113.9"}},
        headers={"Origin": "https://shop.example"},
    )
    bare, with_context, own_ip = await stream_messages(redis)
    assert bare["context"] == {"ip": "127.0.0.1"}
    assert with_context["context"] == {"page": {"path": "/"}, "ip": "127.0.0.1"}
    assert own_ip["context"] == {"ip": "203.0.113.9"}


async def test_ip_for_direct_server_messages_only(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await client.post("/v1/track", json=TRACK)
    await client.post("/v1/track", json={**TRACK, "context": {"direct": True}})
    server, direct = await stream_messages(redis)
    assert "context" not in server
    assert direct["context"] == {"direct": True, "ip": "127.0.0.1"}


async def test_forwarded_for_only_from_trusted_proxies(
    make_client: MakeClient, redis: Redis
) -> None:
    headers = {"Origin": "https://a.example", "X-Forwarded-For": "198.51.100.7, 10.0.0.2"}
    untrusted = await make_client()
    await untrusted.post("/v1/track", json=TRACK, headers=headers)
    trusted = await make_client(trusted_proxies="127.0.0.1/32, 10.0.0.0/8")
    await trusted.post("/v1/track", json=TRACK, headers=headers)
    spoofed = {"Origin": "https://a.example", "X-Forwarded-For": "not-an-ip, 198.51.100.7"}
    await trusted.post("/v1/track", json=TRACK, headers=spoofed)
    from_untrusted, from_trusted, from_spoofed = await stream_messages(redis)
    assert from_untrusted["context"]["ip"] == "127.0.0.1"
    assert from_trusted["context"]["ip"] == "198.51.100.7"
    assert from_spoofed["context"]["ip"] == "198.51.100.7"
