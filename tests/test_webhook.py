"""Webhooks: third parties' payloads land as `track` messages; Segment payloads as such."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.ingest.sources import Source, Sources
from tests.helpers.gateway import MakeClient
from tests.helpers.streams import stream_messages

KEY = "wk_hooks"
SOURCES = Sources(
    [
        Source(id="stripe", write_keys=[KEY], webhook_event="Stripe Event"),
        Source(id="other", write_keys=["wk_other"]),
    ]
)

STRIPE_EVENT: dict[str, Any] = {
    "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
    "object": "event",
    "api_version": "2022-11-15",
    "created": 1686089970,
    "type": "customer.subscription.updated",
    "livemode": False,
    "pending_webhooks": 1,
    "request": {"id": "req_abc", "idempotency_key": "c0a1"},
    "data": {
        "object": {
            "id": "sub_1NG8Dt2eZvKYlo2C",
            "object": "subscription",
            "customer": "cus_NyC7",
            "status": "active",
            "items": {"object": "list", "data": [{"id": "si_1", "price": {"unit_amount": 2000}}]},
            "metadata": {},
        },
        "previous_attributes": {"status": "trialing"},
    },
}


@pytest.fixture
async def hooks(make_client: MakeClient) -> TestClient[Any, Any]:
    return await make_client(SOURCES)


async def post(client: TestClient[Any, Any], path: str, body: bytes, **headers: str) -> Any:
    response = await client.post(path, data=body, headers=headers)
    return response.status, await response.json()


async def test_stripe_like_object(hooks: TestClient[Any, Any], redis: Redis) -> None:
    status, answer = await post(
        hooks,
        f"/v1/webhook?writeKey={KEY}",
        json.dumps(STRIPE_EVENT).encode(),
        **{
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": "t=1686089970,v1=5257a869e7ec",
        },
    )
    assert (status, answer) == (200, {"success": True})
    [message] = await stream_messages(redis)
    assert message["type"] == "track"
    assert message["event"] == "Stripe Event"  # the source's webhook_event
    assert message["properties"] == STRIPE_EVENT
    assert message["anonymousId"] == "webhook:stripe"
    assert message["context"]["library"]["name"] == "webhook"
    assert message["context"]["userAgent"].startswith("Stripe/1.0")
    assert "webhook" not in message["context"]  # no X- header was sent
    assert "Stripe-Signature" not in json.dumps(message)
    assert message["_source"] == "stripe"
    assert message["receivedAt"]
    assert message["timestamp"] == message["receivedAt"]


async def test_a_retried_delivery_has_the_same_message_id(
    hooks: TestClient[Any, Any], redis: Redis
) -> None:
    body = json.dumps(STRIPE_EVENT).encode()
    for _ in range(2):
        await post(hooks, f"/v1/w?writeKey={KEY}", body)
    other = json.dumps({**STRIPE_EVENT, "id": "evt_2"}).encode()
    await post(hooks, f"/v1/w?writeKey={KEY}", other)
    # The retry has the first delivery's messageId, so dedupe stores it once.
    first, second = await stream_messages(redis)
    assert first["properties"]["id"] == STRIPE_EVENT["id"]
    assert second["properties"]["id"] == "evt_2"
    assert second["messageId"] != first["messageId"]


async def test_github_like_headers_are_kept_but_not_signatures(
    hooks: TestClient[Any, Any], redis: Redis
) -> None:
    push = {"ref": "refs/heads/main", "repository": {"full_name": "acme/site"}, "commits": []}
    status, _ = await post(
        hooks,
        f"/v1/webhook?writeKey={KEY}",
        json.dumps(push).encode(),
        **{
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "X-Hub-Signature-256": "sha256=d57c68ca6f92289e6987922ff26938930f6e66a2d161ef06",
            "X-Shopify-Hmac-Sha256": "XWmrwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4bM=",
        },
    )
    assert status == 200
    [message] = await stream_messages(redis)
    assert message["context"]["webhook"]["headers"] == {
        "x-github-event": "push",
        "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    }
    assert message["properties"] == push


async def test_json_array(hooks: TestClient[Any, Any], redis: Redis) -> None:
    """SendGrid-style: an array of events in one POST, kept whole under properties.items."""
    events = [
        {"email": "a@example.com", "event": "open", "sg_event_id": "e1", "timestamp": 1700000000},
        {"email": "b@example.com", "event": "click", "url": "https://x.example/"},
    ]
    status, _ = await post(hooks, f"/v1/webhook?writeKey={KEY}", json.dumps(events).encode())
    assert status == 200
    [message] = await stream_messages(redis)
    assert message["properties"] == {"items": events}
    assert message["event"] == "Stripe Event"


async def test_form_body(hooks: TestClient[Any, Any], redis: Redis) -> None:
    """Twilio-style: form-encoded fields, a repeated one becomes a list."""
    form = [
        ("MessageSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
        ("From", "+14155551234"),
        ("Body", "Hello & goodbye = ok?"),
        ("MediaUrl", "https://m.example/1"),
        ("MediaUrl", "https://m.example/2"),
        ("Empty", ""),
    ]
    status, _ = await post(
        hooks,
        f"/v1/w?writeKey={KEY}",
        urlencode(form).encode(),
        **{"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200
    [message] = await stream_messages(redis)
    assert message["properties"] == {
        "MessageSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
        "From": "+14155551234",
        "Body": "Hello & goodbye = ok?",
        "MediaUrl": ["https://m.example/1", "https://m.example/2"],
        "Empty": "",
    }


async def test_github_form_payload_field(hooks: TestClient[Any, Any], redis: Redis) -> None:
    """GitHub's form webhooks put the JSON in one `payload` field."""
    push = {"ref": "refs/heads/main", "after": "abc"}
    status, _ = await post(
        hooks,
        f"/v1/webhook?writeKey={KEY}",
        urlencode({"payload": json.dumps(push)}).encode(),
        **{"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200
    [message] = await stream_messages(redis)
    assert message["properties"] == push


async def test_json_labelled_as_a_form(hooks: TestClient[Any, Any], redis: Redis) -> None:
    body = json.dumps({"order_id": 7, "total": "9.99"}).encode()
    await post(
        hooks,
        f"/v1/w?writeKey={KEY}",
        body,
        **{"Content-Type": "application/x-www-form-urlencoded"},
    )
    [message] = await stream_messages(redis)
    assert message["properties"] == {"order_id": 7, "total": "9.99"}


async def test_segment_batch_from_another_platform(
    hooks: TestClient[Any, Any], redis: Redis
) -> None:
    """A platform that already speaks Segment: its batch lands item by item, its own
    writeKey winning over the URL's, as on every route."""
    batch = {
        "writeKey": "wk_other",
        "sentAt": "2024-05-01T12:00:01.000Z",
        "context": {"library": {"name": "customerio", "version": "2"}},
        "batch": [
            {
                "type": "identify",
                "userId": "u42",
                "traits": {"email": "u42@example.com"},
                "timestamp": "2024-05-01T12:00:00.000Z",
            },
            {"type": "track", "userId": "u42", "event": "Email Delivered", "properties": {"n": 1}},
        ],
    }
    status, answer = await post(hooks, f"/v1/webhook?writeKey={KEY}", json.dumps(batch).encode())
    assert (status, answer) == (200, {"success": True})
    identify, track = await stream_messages(redis)
    assert identify["type"] == "identify"
    assert identify["traits"] == {"email": "u42@example.com"}
    assert track["event"] == "Email Delivered"
    assert track["context"]["library"]["name"] == "customerio"  # not wrapped
    assert {identify["_source"], track["_source"]} == {"other"}  # the body's key won


async def test_segment_batch_with_a_bad_item(hooks: TestClient[Any, Any], redis: Redis) -> None:
    batch = {"batch": [{"type": "track", "userId": "u", "event": "E"}, {"type": "track"}]}
    status, answer = await post(hooks, f"/v1/w?writeKey={KEY}", json.dumps(batch).encode())
    assert status == 207
    assert answer["Accepted"] == 1
    assert answer["Errors"][0]["Index"] == 1
    assert len(await stream_messages(redis)) == 1


async def test_single_segment_message(hooks: TestClient[Any, Any], redis: Redis) -> None:
    message = {"type": "group", "userId": "u", "groupId": "acme", "traits": {"seats": 5}}
    status, _ = await post(hooks, f"/v1/w?writeKey={KEY}", json.dumps(message).encode())
    assert status == 200
    [landed] = await stream_messages(redis)
    assert landed["type"] == "group"
    assert landed["groupId"] == "acme"
    assert "library" not in landed.get("context", {})


async def test_write_key_in_the_body_when_the_url_has_none(
    hooks: TestClient[Any, Any], redis: Redis
) -> None:
    status, _ = await post(hooks, "/v1/webhook", b'{"writeKey": "wk_other", "ping": true}')
    assert status == 200
    [message] = await stream_messages(redis)
    assert message["_source"] == "other"
    assert message["event"] == "Webhook Received"  # the default name
    assert message["properties"] == {"ping": True}  # the writeKey is not stored


@pytest.mark.parametrize(
    "body",
    [
        b'{"writeKey": "wk_other", "a": 1}',  # wrapped
        b'{"writeKey": "wk_other", "type": "track", "userId": "u", "event": "E"}',  # a message
    ],
)
async def test_body_key_beats_the_query_key(
    hooks: TestClient[Any, Any], redis: Redis, body: bytes
) -> None:
    # The contract's order on every route: Basic, the body, the query (docs/decisions.md).
    status, _ = await post(hooks, f"/v1/w?writeKey={KEY}", body)
    assert status == 200
    [message] = await stream_messages(redis)
    assert message["_source"] == "other"
    assert "writeKey" not in message


async def test_open_mode(client: TestClient[Any, Any], redis: Redis) -> None:
    status, _ = await post(client, "/v1/webhook", b'{"hello": "world"}')
    assert status == 200
    [message] = await stream_messages(redis)
    assert message["_source"] == "default"
    assert message["anonymousId"] == "webhook:default"
    assert message["event"] == "Webhook Received"


INVALID_KEY = {"Error": "Bad Request", "Message": "Invalid or missing writekey", "Details": ""}


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "message"),
    [
        (f"/v1/w?writeKey={KEY}", b"{broken", {}, 400, "Invalid JSON"),
        (f"/v1/w?writeKey={KEY}", b"", {}, 400, "Empty body"),
        (f"/v1/w?writeKey={KEY}", b'"just a string"', {}, 400, "A webhook payload must be"),
        (f"/v1/w?writeKey={KEY}", b"\xff\xfe{}", {}, 400, "Invalid UTF-8"),
        (
            f"/v1/w?writeKey={KEY}",
            b"a=\xff",
            {"Content-Type": "application/x-www-form-urlencoded"},
            400,
            "Invalid UTF-8",
        ),
        (f"/v1/w?writeKey={KEY}", b'{"type": "track", "userId": "u"}', {}, 400, "Invalid message"),
        ("/v1/webhook", b'{"a": 1}', {}, 400, "Invalid or missing writekey"),
        ("/v1/webhook?writeKey=unknown", b'{"a": 1}', {}, 400, "Invalid or missing writekey"),
        (
            f"/v1/w?writeKey={KEY}",
            b'{"blob": "' + b"x" * 40_000 + b'"}',
            {},
            413,
            "Message is larger than 32768 bytes",
        ),
        (f"/v1/w?writeKey={KEY}", b"[" * 70 + b"]" * 70, {}, 400, "Message nested too deeply"),
    ],
)
async def test_bad_input(
    hooks: TestClient[Any, Any],
    redis: Redis,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    response = await hooks.post(path, data=body, headers={"Origin": "https://x.example", **headers})
    assert response.status == status
    answer = await response.json()
    assert answer["Message"].startswith(message)
    # A webhook is no tracking route: a browser may read the answer, without credentials.
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert await stream_messages(redis) == []
