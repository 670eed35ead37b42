"""Every field a client sends reaches Redis unchanged, apart from the enrichment."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import msgspec
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.constants import events_key
from gateway.http.app_keys import COMMITTER
from tests.helpers.gateway import MakeClient
from tests.helpers.streams import read_stream, stream_messages

# analytics.js's shape, with every kind of JSON value and fields the gateway does not know.
MESSAGE: dict[str, Any] = {
    "type": "track",
    "event": "Order Completed",
    "userId": "user-42",
    "anonymousId": "5b7c6f0e-9a2f-4a59-8f59-4f3c1c1d2a10",
    "messageId": "ajs-next-1700000000000-3f8a",
    "timestamp": "2024-05-01T10:00:00.000Z",
    "sentAt": "2024-05-01T10:00:00.100Z",
    "properties": {
        "order_id": "50314b8e",
        "total": 27.5,
        "revenue": 25.0,
        "tiny": 1e-7,
        "huge": 123456789012345678901234567890,
        "negative": -3,
        "coupon": None,
        "gift": False,
        "products": [
            {"product_id": "507f1f77", "sku": "45790-32", "price": 19.99, "quantity": 1},
            {"product_id": "505bd76", "sku": "46493-32", "price": 3.5, "quantity": 2},
        ],
        "unicode": 'Zoë ☕ 日本語 🚀 \u0000 "quoted" \\ back',
        "empty": {},
        "list": [],
    },
    "context": {
        "library": {"name": "analytics.js", "version": "next-1.70.0"},
        "page": {
            "path": "/checkout",
            "referrer": "https://www.example.com/cart",
            "search": "?utm_source=newsletter",
            "title": "Checkout",
            "url": "https://www.example.com/checkout?utm_source=newsletter",
        },
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
        "locale": "en-US",
        "campaign": {"source": "newsletter", "medium": "email", "name": "nov"},
        "screen": {"width": 1920, "height": 1080, "density": 2},
        "timezone": "Europe/Paris",
        "ip": "203.0.113.50",
        "traits": {"plan": "pro"},
    },
    "integrations": {"All": True, "Mixpanel": {"sessionId": 1}},
    "_metadata": {"bundled": ["Segment.io"], "unbundled": []},
    "customTopLevel": {"anything": ["goes", 1, None]},
}
ADDED = {"receivedAt", "originalTimestamp"}


async def test_every_field_read_back_unchanged(client: TestClient[Any, Any], redis: Redis) -> None:
    response = await client.post("/v1/track", json=MESSAGE)
    assert response.status == 200
    [stored] = await stream_messages(redis)
    stored.pop("_source")
    assert set(stored) == set(MESSAGE) | ADDED
    for field, value in MESSAGE.items():
        if field != "timestamp":  # corrected for skew; the client's value is kept beside it
            assert stored[field] == value, field
    assert stored["originalTimestamp"] == MESSAGE["timestamp"]


async def test_batch_items_read_back_unchanged(client: TestClient[Any, Any], redis: Redis) -> None:
    items = [copy.deepcopy(MESSAGE) for _ in range(3)]
    for number, item in enumerate(items):
        item["messageId"] = f"m-{number}"
    response = await client.post("/v1/batch", json={"batch": items})
    assert response.status == 200
    stored = await stream_messages(redis)
    assert [m["messageId"] for m in stored] == ["m-0", "m-1", "m-2"]
    for original, back in zip(items, stored, strict=True):
        for field, value in original.items():
            if field != "timestamp":
                assert back[field] == value, field


async def test_stream_entry_fields(client: TestClient[Any, Any], redis: Redis) -> None:
    await client.post("/v1/track", json=MESSAGE)
    [(_id, fields)] = await read_stream(redis, events_key(0))
    assert set(fields) == {b"data", b"source"}
    assert fields[b"source"] == b"default"
    data = msgspec.json.decode(fields[b"data"])
    assert data["properties"]["unicode"] == MESSAGE["properties"]["unicode"]
    fields[b"data"].decode("utf-8")  # UTF-8 JSON


async def test_partitions_by_user_keep_each_users_order(
    make_client: MakeClient, redis: Redis
) -> None:
    client = await make_client(partitions=4)
    users = [f"user-{n}" for n in range(12)]
    batch = [
        {"type": "track", "userId": user, "event": f"step-{step}"}
        for step in range(3)
        for user in users
    ]
    assert (await client.post("/v1/batch", json={"batch": batch})).status == 200
    # Anonymous users partition by anonymousId.
    await client.post("/v1/page", json={"anonymousId": "anon-1"})
    seen: dict[str, int] = {}
    total = 0
    for partition in range(4):
        messages = await stream_messages(redis, partition)
        total += len(messages)
        for message in messages:
            user = message.get("userId") or message["anonymousId"]
            assert seen.setdefault(user, partition) == partition  # one partition per user
        for user in {m["userId"] for m in messages if "userId" in m}:
            steps = [m["event"] for m in messages if m.get("userId") == user]
            assert steps == ["step-0", "step-1", "step-2"]
    assert total == len(batch) + 1
    assert len(set(seen.values())) > 1  # the users are spread over the partitions


async def test_concurrent_requests_share_round_trips(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    committer = client.app[COMMITTER]
    before = committer.flushes
    answers = await asyncio.gather(
        *(client.post("/v1/t", json={"userId": f"u{n}", "event": "E"}) for n in range(200))
    )
    assert [a.status for a in answers] == [200] * 200
    assert len(await stream_messages(redis)) == 200
    # Group commit: the 200 requests went to Redis in far fewer pipelines. A count, not a
    # timing: about a dozen here; a committer that sent a request or two (or three) a
    # pipeline would need 67 or more.
    assert committer.requests >= 200
    assert committer.flushes - before <= 200 // 4


async def test_committing_nothing_returns_at_once(client: TestClient[Any, Any]) -> None:
    committer = client.app[COMMITTER]
    before = committer.flushes
    # It used to wait for the reply to an empty pipeline, which never comes.
    await asyncio.wait_for(committer.commit(()), timeout=5)
    assert committer.flushes == before
