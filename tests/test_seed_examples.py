"""The example payloads of MetaRouter's HTTP Tracking API document (shared/seeds/003_*).

As printed they are not all valid JSON; corrected here: single quotes -> double quotes,
`True` -> `true`, the bare `identify`/`track`/`page`/`group`/`alias` type values quoted, and
the missing commas after `traits`, `properties` and `timestamp` added.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.ingest.sources import Source, Sources
from tests.helpers.gateway import MakeClient
from tests.helpers.streams import stream_messages

EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    (
        "/v1/identify",
        {
            "userId": "1234qwerty",
            "traits": {
                "name": "Arthur Dent",
                "email": "earthling1@hitchhikersguide.com",
                "hasTowel": True,
            },
            "timestamp": "2015-11-10T00:45:23.412Z",
            "type": "identify",
        },
    ),
    (
        "/v1/track",
        {
            "userId": "1234qwerty",
            "event": "Added File",
            "properties": {
                "fileTitle": "Life, the Universe, and Everything",
                "fileSize": "42kb",
                "fileType": "PDF",
            },
            "timestamp": "2015-11-10T00:45:23.412Z",
            "type": "track",
        },
    ),
    (
        "/v1/page",
        {
            "userId": "1234qwerty",
            "section": "Blog",
            "name": "10 Questions with Marvin, the clinically depressed robot",
            "properties": {"referrer": "http://reddit.com/r/AMA"},
            "type": "page",
        },
    ),
    (
        "/v1/group",
        {
            "userId": "1234qwerty",
            "groupId": "5678dvorak",
            "traits": {"name": "The Hitchhikers", "relativePosition": "[39.1000 N, 84.5167 W]"},
            "type": "group",
        },
    ),
    (
        "/v1/alias",
        {
            "previousId": "anonymous_id",
            "userId": "assigned_id_or_email",
            "timestamp": "2015-11-10T00:45:23.412Z",
            "type": "alias",
        },
    ),
]

BATCH: dict[str, Any] = {
    "batch": [
        {
            "anonymousId": "cf09e649-fd0b-46b6-9fc1-53ab9cd05c47",
            "messageId": "317b11a8-8cd3-40ad-b3fb-622835c42cfd",
            "sentAt": "2020-03-02T18:29:53.661Z",
            "timestamp": "2020-03-02T18:29:27.333Z",
            "type": "track",
            "writeKey": "test1",
            "event": "example 1 event",
        },
        {
            "anonymousId": "cf09e649-fd0b-46b6-9fc1-53ab9cd05c47",
            "messageId": "317b11a8-8cd3-40ad-b3fb-123d417b11a8",
            "sentAt": "2020-03-02T18:29:53.661Z",
            "timestamp": "2020-03-02T18:29:27.333Z",
            "type": "track",
            "writeKey": "test1",
            "event": "example 1 event",
        },
    ],
    "context": {
        "page": {
            "path": "/mycart/home",
            "referrer": "https://www.example.com/",
            "title": "Example - Shopping Cart",
            "url": "https://www.example.com/mycart/home",
        },
        "userAgent": "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, "
        "like Gecko) Chrome/80.0.3987.122 Safari/537.36",
    },
    "integrations": {"All": False, "Mixpanel": True},
}


@pytest.mark.parametrize(("path", "body"), EXAMPLES, ids=[p for p, _ in EXAMPLES])
async def test_single_examples(
    client: TestClient[Any, Any], redis: Redis, path: str, body: dict[str, Any]
) -> None:
    response = await client.post(path, json=body)
    assert response.status == 200
    [stored] = await stream_messages(redis)
    for field, value in body.items():
        if field != "timestamp":
            assert stored[field] == value


async def test_batch_example_with_item_write_keys(make_client: MakeClient, redis: Redis) -> None:
    client = await make_client(sources=Sources([Source(id="test", write_keys=["test1"])]))
    response = await client.post("/v1/import", json=BATCH)
    assert response.status == 200
    stored = await stream_messages(redis)
    assert [m["messageId"] for m in stored] == [m["messageId"] for m in BATCH["batch"]]
    for message in stored:
        assert message["_source"] == "test"
        assert message["context"] == BATCH["context"]
        assert message["integrations"] == {"All": False, "Mixpanel": True}
        assert message["originalTimestamp"] == "2020-03-02T18:29:27.333Z"
        assert "writeKey" not in message
