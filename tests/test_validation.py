"""Each validation rule, with the JSON path of the field in the answer."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from tests.helpers.streams import stored, stream_messages

RULES: list[tuple[str, dict[str, Any], str]] = [
    # (route, body, expected text in Details)
    ("/v1/track", {"event": "E"}, "userId or anonymousId is required - at `$`"),
    ("/v1/track", {"userId": "", "event": "E"}, "userId or anonymousId is required"),
    ("/v1/track", {"userId": None, "anonymousId": None, "event": "E"}, "userId or anonymousId"),
    ("/v1/track", {"userId": "u"}, "missing required field `event`"),
    ("/v1/track", {"userId": "u", "event": ""}, "`$.event`"),
    ("/v1/track", {"userId": "u", "event": 3}, "Expected `str`, got `int` - at `$.event`"),
    ("/v1/track", {"userId": ["u"], "event": "E"}, "at `$.userId`"),
    ("/v1/track", {"userId": True, "event": "E"}, "at `$.userId`"),
    ("/v1/track", {"userId": "u", "event": "E", "properties": []}, "at `$.properties`"),
    ("/v1/track", {"userId": "u", "event": "E", "context": "x"}, "at `$.context`"),
    ("/v1/track", {"userId": "u", "event": "E", "messageId": "m" * 101}, "at `$.messageId`"),
    ("/v1/track", {"userId": "u", "event": "E", "timestamp": "yesterday"}, "at `$.timestamp`"),
    ("/v1/track", {"userId": "u", "event": "E", "sentAt": 5}, "at `$.sentAt`"),
    ("/v1/group", {"userId": "u"}, "missing required field `groupId`"),
    ("/v1/group", {"userId": "u", "groupId": ""}, "at `$.groupId`"),
    ("/v1/alias", {"userId": "u"}, "missing required field `previousId`"),
    ("/v1/alias", {"anonymousId": "a", "previousId": "p"}, "missing required field `userId`"),
    ("/v1/identify", {"userId": "u", "traits": "vip"}, "at `$.traits`"),
]


@pytest.mark.parametrize(("path", "body", "details"), RULES)
async def test_rule(
    client: TestClient[Any, Any], redis: Redis, path: str, body: dict[str, Any], details: str
) -> None:
    response = await client.post(path, json=body)
    assert response.status == 400
    answer = await response.json()
    assert answer["Error"] == "Bad Request"
    assert answer["Message"] == "Invalid message"
    assert details in answer["Details"]
    assert await stored(redis) == []


@pytest.mark.parametrize(
    "body",
    [
        {"userId": "u", "anonymousId": None, "event": "E"},
        {"userId": None, "anonymousId": "a", "event": "E"},
        {"userId": 42, "event": "E"},  # numeric ids, as some SDKs send them
        {"userId": "u", "event": "E", "messageId": "m" * 100},
        {"userId": "u", "event": "E", "timestamp": "2024-01-02T03:04:05.123456+05:30"},
    ],
)
async def test_valid_edge_cases_are_accepted(
    client: TestClient[Any, Any], redis: Redis, body: dict[str, Any]
) -> None:
    response = await client.post("/v1/track", json=body)
    assert response.status == 200
    assert len(await stream_messages(redis)) == 1


async def test_batch_item_paths_and_types(client: TestClient[Any, Any], redis: Redis) -> None:
    batch = [
        {"type": "track", "userId": "u", "event": "ok"},
        {"type": "track", "event": "no user"},
        {"type": "dance", "userId": "u"},
        {"userId": "u", "event": "no type"},
        {"type": "group", "userId": "u", "groupId": 7},
        {"type": "track", "userId": {"id": 1}, "event": "E"},
        "not an object",
    ]
    response = await client.post("/v1/batch", json={"batch": batch})
    assert response.status == 207
    answer = await response.json()
    assert answer["Success"] is False
    assert answer["Accepted"] == 2
    details = {e["Index"]: e["Details"] for e in answer["Errors"]}
    assert set(details) == {1, 2, 3, 5, 6}
    assert "at `$.batch[1]`" in details[1]
    assert "got 'dance' - at `$.batch[2].type`" in details[2]
    assert "got missing - at `$.batch[3].type`" in details[3]
    assert "at `$.batch[5].userId`" in details[5]
    assert "$.batch[6] is a string" in details[6]
    assert [m["event"] for m in await stream_messages(redis) if "event" in m] == ["ok"]
    assert len(await stream_messages(redis)) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"batch": {"type": "track"}}, "Expected `array`, got `object` - at `$.batch`"),
        ({"events": []}, "missing required field `batch`"),
        ({"batch": [], "sentAt": "later"}, "at `$.sentAt`"),
        ({"batch": [], "context": []}, "at `$.context`"),
    ],
)
async def test_bad_batch_envelope(
    client: TestClient[Any, Any], redis: Redis, body: dict[str, Any], message: str
) -> None:
    response = await client.post("/v1/batch", json=body)
    assert response.status == 400
    answer = await response.json()
    assert message in answer["Details"]
    assert await stored(redis) == []
