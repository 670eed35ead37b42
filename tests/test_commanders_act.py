"""Commanders Act's HTTP tracking API (shared/seeds/000_* v2, 002_* v1) on `/events`.

The documents' example payloads are the test cases, sent to their routes and read back from
the stream field by field. As printed:
- the v2 event (000) is valid JSON, used verbatim;
- the v2 batch (000) is not: the comma after `"consistent_anonymous_id": "5689865"` is
  missing. `BATCH_AS_PRINTED` is the text verbatim (and answers 400), `BATCH` adds the comma;
- the v1 event (002) is a fragment: the enclosing `{}` are missing, and so are the closing
  braces of `user`, `properties`, `page` and `device` and the commas after `properties` and
  `page`. `V1_EVENT` closes each object where the indentation and the v1 text put it (`user`
  inside `properties`; `page` and `device` at the root, as v1's metadata).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.constants import REJECTED_STREAM, events_key
from gateway.ingest.sources import CommandersAct, Source, Sources, SourcesError
from gateway.ops.embedded import RedisProcess
from gateway.store import rejected
from tests.helpers.gateway import MakeClient
from tests.helpers.streams import read_stream, stream_messages

TOKEN = "7183b9d4-1031-11ee-be56-0242ac120002"
"""The documents' source key, configured for site 29 as the source `web`."""
V2 = {"tc_s": "29", "token": TOKEN}

EVENT_AS_PRINTED = """\
{
  "event_name": "search",
  "search_term": "t-shirts",
  "user": {
    "id": "12345",
    "consistent_anonymous_id": "67892",
    "email": "toto@domain.fr",
    "consent_categories": [
      "1",
      "3"
    ]
  },
  "context": {
    "event_id": "202110130000000000",
    "page": {
      "title": "Search page",
      "url": "https://shop.com/search?q=...",
      "lang": "en",
      "referrer": "https://www.google.fr",
      "viewport": {
        "width": 320,
        "height": 568
      }
    },
    "device": {
      "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/46.0.2490.86 Safari/537.36",
      "ip": "102.3.4.56",
      "lang": "fr",
      "cookie": "_fbp=123; _fbc=456; _ga=789",
      "timezone": "Europe/Paris"
    },
    "event_timestamp": "1639044446636"
  }
}
"""  # noqa: E501 (the document's text, verbatim)
EVENT: dict[str, Any] = json.loads(EVENT_AS_PRINTED)

BATCH_AS_PRINTED = """\
{
  "batch": [
      {
        "event_name": "add_payment_info",
        "payment_method": "card",
        "revenue": 16.00,
        "value": 22.53,
        "currency": "EUR",
        "user": {
            "id": "12345",
            "consistent_anonymous_id": "67892",
            "consent_categories": [1,3]
        },
        "context": {
          "event_id": "202210310000000000",
          "page": {},
          "device": {}
        },
        "event_timestamp": "1639044446636"
      },
      {
        "event_name": "generate_lead",
        "method": "LinkedIn",
        "user": {
            "consistent_anonymous_id": "5689865"
            "consent_categories": [1,2,3]
        },
        "context": {
          "event_id": "202210180000000000",
          "page": {},
          "device": {}
        },
        "event_timestamp": "1639094446633"
      }
  ]
}
"""
BATCH: dict[str, Any] = json.loads(
    BATCH_AS_PRINTED.replace('"5689865"\n', '"5689865",\n')  # the missing comma
)

USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_0) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/46.0.2490.86 Safari/537.36"
)
V1_EVENT: dict[str, Any] = {
    "event_name": "search",
    "event_id": "202110130000000000",
    "event_timestamp": 1639044446636,
    "properties": {
        "search_term": "t-shirts",
        "user": {"id": "12345", "consent_categories": [1, 3]},
    },
    "page": {"title": "Search page", "location": "https://shop.com/search?q=..."},
    "device": {"user_agent": USER_AGENT, "ip": "", "cookie": "_fbp=123; _fbc=456; _ga=789"},
}

SOURCES = Sources(
    [
        Source(
            id="web",
            write_keys=["wk_web"],
            commanders_act=CommandersAct(site_id=29, source_keys=[TOKEN, "ca_old"]),
        ),
        Source(
            id="app",
            write_keys=[],
            commanders_act=CommandersAct(site_id="30", source_keys=["ca_app"]),
        ),
        Source(
            id="retired",
            write_keys=[],
            enabled=False,
            commanders_act=CommandersAct(site_id=29, source_keys=["ca_off"]),
        ),
    ]
)
SUCCESS = {"success": True}


@pytest.fixture
async def sourced(make_client: MakeClient) -> TestClient[Any, Any]:
    return await make_client(sources=SOURCES)


async def rejections(redis: Redis) -> list[dict[str, Any]]:
    """The rejected-events stream, oldest first, each with its `source` field as `_source`."""
    out = []
    for _id, fields in await read_stream(redis, REJECTED_STREAM):
        record = msgspec.json.decode(fields[b"data"])
        record["_source"] = fields[b"source"].decode()
        out.append(record)
    return out


def without_clock(message: dict[str, Any]) -> dict[str, Any]:
    """The message minus `receivedAt` (the gateway's clock), which is checked apart."""
    assert message["receivedAt"].endswith("Z")
    return {k: v for k, v in message.items() if k != "receivedAt"}


async def test_v2_event_example(sourced: TestClient[Any, Any], redis: Redis) -> None:
    response = await sourced.post("/events", params=V2, json=EVENT)
    assert response.status == 200
    assert await response.json() == SUCCESS
    assert "Deprecation" not in response.headers
    [message] = await stream_messages(redis)
    assert without_clock(message) == {
        "type": "track",
        "event": "search",
        "userId": "12345",
        "anonymousId": "67892",
        "messageId": "202110130000000000",
        "originalTimestamp": "2021-12-09T10:07:26.636Z",
        "timestamp": "2021-12-09T10:07:26.636Z",
        "properties": {"search_term": "t-shirts"},
        "context": {
            "library": {"name": "commanders-act", "version": "2.0"},
            "traits": {"email": "toto@domain.fr"},
            "consent": {"categoryPreferences": {"1": True, "3": True}},
            "page": {
                "title": "Search page",
                "url": "https://shop.com/search?q=...",
                "lang": "en",
                "referrer": "https://www.google.fr",
                "viewport": {"width": 320, "height": 568},
            },
            "userAgent": USER_AGENT,
            "ip": "102.3.4.56",
            "locale": "fr",
            "timezone": "Europe/Paris",
            "commandersAct": {
                "siteId": "29",
                "consent_categories": ["1", "3"],
                "device": {"cookie": "_fbp=123; _fbc=456; _ga=789"},
            },
        },
        "_source": "web",
    }
    assert await rejections(redis) == []


async def test_v2_batch_example(sourced: TestClient[Any, Any], redis: Redis) -> None:
    response = await sourced.post("/events/batch", params=V2, json=BATCH)
    assert response.status == 200
    assert await response.json() == SUCCESS
    first, second = await stream_messages(redis)  # in the batch's order
    library = {"name": "commanders-act", "version": "2.0"}
    assert without_clock(first) == {
        "type": "track",
        "event": "add_payment_info",
        "userId": "12345",
        "anonymousId": "67892",
        "messageId": "202210310000000000",
        # The example puts event_timestamp at the root, where v1 had it: read as the time.
        "originalTimestamp": "2021-12-09T10:07:26.636Z",
        "timestamp": "2021-12-09T10:07:26.636Z",
        "properties": {
            "payment_method": "card",
            "revenue": 16.0,
            "value": 22.53,
            "currency": "EUR",
        },
        "context": {
            "library": library,
            "consent": {"categoryPreferences": {"1": True, "3": True}},
            "commandersAct": {"siteId": "29", "consent_categories": [1, 3]},
        },
        "_source": "web",
    }
    assert without_clock(second) == {
        "type": "track",
        "event": "generate_lead",
        "anonymousId": "5689865",
        "messageId": "202210180000000000",
        "originalTimestamp": "2021-12-10T00:00:46.633Z",
        "timestamp": "2021-12-10T00:00:46.633Z",
        "properties": {"method": "LinkedIn"},
        "context": {
            "library": library,
            "consent": {"categoryPreferences": {"1": True, "2": True, "3": True}},
            "commandersAct": {"siteId": "29", "consent_categories": [1, 2, 3]},
        },
        "_source": "web",
    }


async def test_v2_batch_as_printed_is_invalid_json(
    sourced: TestClient[Any, Any], redis: Redis
) -> None:
    response = await sourced.post("/events/batch", params=V2, data=BATCH_AS_PRINTED)
    assert response.status == 400
    assert (await response.json())["Message"] == "Invalid JSON"
    assert await stream_messages(redis) == []
    assert await rejections(redis) == []


async def test_v1_event_example(sourced: TestClient[Any, Any], redis: Redis) -> None:
    response = await sourced.post(
        "/events",
        params={"tc_s": "29"},
        json=V1_EVENT,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status == 200
    assert await response.json() == SUCCESS
    assert response.headers["Deprecation"] == "@1701388800"
    [message] = await stream_messages(redis)
    assert without_clock(message) == {
        "type": "track",
        "event": "search",
        "userId": "12345",
        "messageId": "202110130000000000",
        "originalTimestamp": "2021-12-09T10:07:26.636Z",
        "timestamp": "2021-12-09T10:07:26.636Z",
        "properties": {"search_term": "t-shirts"},
        "context": {
            "library": {"name": "commanders-act", "version": "1.0"},
            "consent": {"categoryPreferences": {"1": True, "3": True}},
            "page": {"title": "Search page", "url": "https://shop.com/search?q=..."},
            "userAgent": USER_AGENT,
            "commandersAct": {
                "siteId": "29",
                "consent_categories": [1, 3],
                # An empty ip has no Segment home (and must not block the caller's).
                "device": {"ip": "", "cookie": "_fbp=123; _fbc=456; _ga=789"},
            },
        },
        "_source": "web",
    }


async def test_v1_and_v2_are_told_apart(sourced: TestClient[Any, Any], redis: Redis) -> None:
    # A v1 body with a v2 key: read as v1 by its shape, and flagged as deprecated.
    v1_body = await sourced.post("/events", params=V2, json={**V1_EVENT, "event_id": "a"})
    assert v1_body.headers["Deprecation"] == "@1701388800"
    # A v2 body with a v1 key (a client half migrated): read as v2, the key flagged.
    bearer = await sourced.post(
        "/events",
        params={"tc_s": "29"},
        json={**EVENT, "context": {**EVENT["context"], "event_id": "b"}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert bearer.headers["Deprecation"] == "@1701388800"
    # With neither a context nor a properties object, a Bearer key says v1: root metadata.
    bare = {"event_name": "ping", "event_id": "c", "page": {"url": "u"}, "user": {"id": "7"}}
    await sourced.post(
        "/events",
        params={"tc_s": "29"},
        json=bare,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    await sourced.post("/events", params=V2, json={**bare, "event_id": "d"})
    one, two, three, four = await stream_messages(redis)
    assert (one["messageId"], one["properties"]) == ("a", {"search_term": "t-shirts"})
    assert (two["messageId"], two["properties"]) == ("b", {"search_term": "t-shirts"})
    assert (three["messageId"], three["context"]["page"], three["properties"]) == (
        "c",
        {"url": "u"},
        {},
    )
    # Read as v2, the same root fields are the event's properties.
    assert four["properties"] == {"event_id": "d", "page": {"url": "u"}}
    assert four["messageId"] != "d"  # a generated one
    assert await rejections(redis) == []


@pytest.mark.parametrize(
    ("params", "headers", "reason", "source"),
    [
        ({"tc_s": "29"}, {}, "missing token", None),
        ({"tc_s": "29", "token": "nope"}, {}, "unknown token", None),
        ({"tc_s": "29", "token": "wk_web"}, {}, "unknown token", None),  # a writeKey is not one
        ({"tc_s": "29"}, {"Authorization": "Basic d2tfd2ViOg=="}, "missing token", None),
        ({"tc_s": "30", "token": TOKEN}, {}, "tc_s '30' is not the site of the token", "web"),
        ({"token": TOKEN}, {}, "missing tc_s", "web"),
        ({"tc_s": "29", "token": "ca_off"}, {}, "source 'retired' is disabled", "retired"),
    ],
)
async def test_refused_caller_gets_200_and_a_rejection(
    sourced: TestClient[Any, Any],
    redis: Redis,
    params: dict[str, str],
    headers: dict[str, str],
    reason: str,
    source: str | None,
) -> None:
    response = await sourced.post("/events", params=params, json=EVENT, headers=headers)
    assert response.status == 200
    assert await response.json() == SUCCESS
    assert await stream_messages(redis) == []
    [record] = await rejections(redis)
    assert record["receivedAt"].endswith("Z")
    del record["receivedAt"]
    assert record == {
        "reason": reason,
        "source": source,
        "dialect": "commanders-act-v2",
        "route": "/events",
        "siteId": params.get("tc_s"),
        "index": None,
        "body": EVENT,
        "_source": source or "",
    }
    # The token is a credential: never stored.
    for _id, fields in await read_stream(redis, REJECTED_STREAM):
        assert params.get("token", TOKEN).encode() not in fields[b"data"]


@pytest.mark.parametrize(
    ("params", "headers", "source"),
    [
        (V2, {}, "web"),
        ({"tc_s": "29", "token": "ca_old"}, {}, "web"),  # a second key of the source
        ({"tc_s": "30", "token": "ca_app"}, {}, "app"),  # site_id given as a string
        ({"tc_s": "29"}, {"Authorization": f"bearer {TOKEN}"}, "web"),
    ],
)
async def test_accepted_callers(
    sourced: TestClient[Any, Any],
    redis: Redis,
    params: dict[str, str],
    headers: dict[str, str],
    source: str,
) -> None:
    response = await sourced.post("/events/batch", params=params, json=BATCH, headers=headers)
    assert response.status == 200
    messages = await stream_messages(redis)
    assert [m["_source"] for m in messages] == [source, source]
    assert [m["context"]["commandersAct"]["siteId"] for m in messages] == [params["tc_s"]] * 2
    assert await rejections(redis) == []


async def test_refused_batch_rejects_each_event(
    sourced: TestClient[Any, Any], redis: Redis
) -> None:
    response = await sourced.post("/events/batch", params={"tc_s": "29", "token": "x"}, json=BATCH)
    assert response.status == 200
    assert await stream_messages(redis) == []
    records = await rejections(redis)
    assert [(r["index"], r["reason"], r["body"]) for r in records] == [
        (0, "unknown token", BATCH["batch"][0]),
        (1, "unknown token", BATCH["batch"][1]),
    ]
    assert {r["route"] for r in records} == {"/events/batch"}


async def test_open_mode_accepts_any_caller(client: TestClient[Any, Any], redis: Redis) -> None:
    await client.post("/events", json=EVENT)  # no tc_s, no token
    await client.post("/events/batch", params={"tc_s": "12", "token": "anything"}, json=BATCH)
    messages = await stream_messages(redis)
    assert [m["_source"] for m in messages] == ["default"] * 3
    assert "siteId" not in messages[0]["context"]["commandersAct"]
    assert [m["context"]["commandersAct"]["siteId"] for m in messages[1:]] == ["12", "12"]
    assert await rejections(redis) == []


BAD_EVENTS: list[tuple[Any, str]] = [
    ({"user": {"id": "1"}}, "event_name is required (a non-empty string)"),
    ({"event_name": "", "user": {"id": "1"}}, "event_name is required (a non-empty string)"),
    (42, "an event must be a JSON object"),
    (
        {"event_name": "x", "user": {"email": "a@b.c"}},
        "user.id or user.consistent_anonymous_id is required",
    ),
    (
        {"event_name": "x", "user": {"id": True}},
        "user.id must be a string or an integer",
    ),
    ({"event_name": "x", "user": "1"}, "user must be an object"),
    (
        {"event_name": "x", "user": {"id": "1"}, "context": {"event_timestamp": "yesterday"}},
        "context.event_timestamp must be milliseconds since 1970, a number or a string",
    ),
    (
        {"event_name": "x", "user": {"id": "1"}, "context": {"event_id": "e" * 101}},
        "context.event_id must have 1 to 100 characters",
    ),
    (
        {"event_name": "x", "user": {"id": "1"}, "context": {"page": "home"}},
        "context.page must be an object",
    ),
]


async def test_unacceptable_events_of_a_batch_are_rejected_alone(
    sourced: TestClient[Any, Any], redis: Redis
) -> None:
    events = [BATCH["batch"][0]] + [event for event, _ in BAD_EVENTS] + [BATCH["batch"][1]]
    response = await sourced.post("/events/batch", params=V2, json={"batch": events})
    assert response.status == 200
    assert await response.json() == SUCCESS
    messages = await stream_messages(redis)
    assert [m["event"] for m in messages] == ["add_payment_info", "generate_lead"]
    records = await rejections(redis)
    assert [(r["index"], r["reason"], r["body"]) for r in records] == [
        (index, reason, event) for index, (event, reason) in enumerate(BAD_EVENTS, start=1)
    ]
    assert {(r["source"], r["_source"], r["dialect"], r["siteId"]) for r in records} == {
        ("web", "web", "commanders-act-v2", "29")
    }


async def test_unacceptable_single_events(sourced: TestClient[Any, Any], redis: Redis) -> None:
    for event, _reason in BAD_EVENTS:
        response = await sourced.post("/events", params=V2, json=event)
        assert response.status == 200
    # A message nested past the limit (64) is refused by the same check as /v1/track's.
    deep: Any = "leaf"
    for _ in range(70):
        deep = {"a": deep}
    response = await sourced.post(
        "/events", params=V2, json={"event_name": "x", "user": {"id": "1"}, "deep": deep}
    )
    assert response.status == 200
    assert await stream_messages(redis) == []
    records = await rejections(redis)
    assert [r["reason"] for r in records[:-1]] == [reason for _, reason in BAD_EVENTS]
    assert records[-1]["reason"].startswith("Message nested too deeply")
    assert {r["index"] for r in records} == {None}


@pytest.mark.parametrize(
    "body", [b'{"batch": 1}', b'{"events": []}', b"[1, 2]", b'"batch"', b"null"]
)
async def test_a_body_that_is_not_a_batch_is_rejected(
    sourced: TestClient[Any, Any], redis: Redis, body: bytes
) -> None:
    response = await sourced.post("/events/batch", params=V2, data=body)
    assert response.status == 200
    [record] = await rejections(redis)
    assert record["reason"].startswith("not a batch: ")
    assert (record["body"], record["index"], record["source"]) == (json.loads(body), None, "web")


@pytest.mark.parametrize("path", ["/events", "/events/batch"])
@pytest.mark.parametrize(
    "body", [b"", b"{", b'{"event_name": "x",}', b"\xff\xfe", b"{'event_name': 'x'}"]
)
async def test_invalid_json_is_a_400(
    sourced: TestClient[Any, Any], redis: Redis, path: str, body: bytes
) -> None:
    response = await sourced.post(path, params=V2, data=body)
    assert response.status == 400
    assert (await response.json())["Message"] in ("Invalid JSON", "Invalid UTF-8")
    assert await stream_messages(redis) == []
    assert await rejections(redis) == []


def padded(event: dict[str, Any], size: int) -> dict[str, Any]:
    """`event` with a `padding` property that makes its JSON exactly `size` bytes."""
    base = len(msgspec.json.encode({**event, "padding": ""}))
    return {**event, "padding": "x" * (size - base)}


async def test_size_limits_are_400s(sourced: TestClient[Any, Any], redis: Redis) -> None:
    limit = 32 * 1024
    fits = padded(EVENT, limit)
    assert len(msgspec.json.encode(fits)) == limit
    over = padded(EVENT, limit + 1)
    assert (await sourced.post("/events", params=V2, data=msgspec.json.encode(fits))).status == 200
    response = await sourced.post("/events", params=V2, data=msgspec.json.encode(over))
    assert response.status == 400
    assert (await response.json())["Message"] == "Request too large"
    # Compressed, the limit applies to the inflated body.
    response = await sourced.post(
        "/events",
        params=V2,
        data=gzip.compress(msgspec.json.encode(over)),
        headers={"Content-Encoding": "gzip"},
    )
    assert response.status == 400

    # A batch: 32 KB per event, 500 KB in all. One event too large fails the whole request.
    item = BATCH["batch"][0]
    response = await sourced.post(
        "/events/batch", params=V2, json={"batch": [item, padded(item, limit + 1)]}
    )
    assert response.status == 400
    assert "event 1 of the batch" in (await response.json())["Details"]
    many = [padded({**item, "context": {"event_id": str(n)}}, limit - 100) for n in range(16)]
    response = await sourced.post("/events/batch", params=V2, json={"batch": many})
    assert response.status == 400  # 16 x 32 KB > 500 KB
    assert (await response.json())["Message"] == "Request too large"
    response = await sourced.post("/events/batch", params=V2, json={"batch": many[:15]})
    assert response.status == 200

    assert len(await stream_messages(redis)) == 1 + 15
    assert await rejections(redis) == []


async def test_an_empty_batch(sourced: TestClient[Any, Any], redis: Redis) -> None:
    response = await sourced.post("/events/batch", params=V2, json={"batch": []})
    assert response.status == 200
    assert await stream_messages(redis) == []
    assert await rejections(redis) == []


async def test_a_retried_event_is_stored_once(sourced: TestClient[Any, Any], redis: Redis) -> None:
    for _ in range(2):
        assert (await sourced.post("/events", params=V2, json=EVENT)).status == 200
    assert len(await stream_messages(redis)) == 1  # context.event_id is the messageId


async def test_rejected_stream_is_bounded(
    sourced: TestClient[Any, Any], redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rejected, "MAXLEN", 10)
    response = await sourced.post("/events/batch", params=V2, json={"batch": [{}] * 300})
    assert response.status == 200
    # `MAXLEN ~` trims whole stream nodes (100 entries each by default): about 10 remain.
    assert 10 <= await redis.xlen(REJECTED_STREAM) <= 200


async def test_rejections_are_logged_without_the_token(
    sourced: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.store.rejected")
    await sourced.post("/events", params={"tc_s": "30", "token": TOKEN}, json=EVENT)
    [line] = [r.getMessage() for r in caplog.records if r.name == "gateway.store.rejected"]
    assert "/events source web tc_s 30: tc_s '30' is not the site of the token" in line
    assert TOKEN not in line


def test_rejection_log_is_throttled(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.store.rejected")
    quiet = rejected.Reporter(interval=3600)
    for n in range(3):
        quiet.note(2, f"reason {n}")
    assert quiet.total == 6
    assert [r.getMessage() for r in caplog.records] == [
        "2 event(s) rejected to gateway:rejected (2 since the start); latest: reason 0"
    ]
    caplog.clear()
    every = rejected.Reporter(interval=0)
    every.note(1, "a")
    every.note(3, "b")
    assert [r.getMessage() for r in caplog.records] == [
        "1 event(s) rejected to gateway:rejected (1 since the start); latest: a",
        "3 event(s) rejected to gateway:rejected (4 since the start); latest: b",
    ]


async def test_one_user_across_dialects_keeps_one_partition(
    make_client: MakeClient, redis: Redis
) -> None:
    gateway = await make_client(sources=SOURCES, partitions=4)
    user = {"id": "12345"}
    await gateway.post(
        "/events", params=V2, json={"event_name": "a", "user": user, "context": {"event_id": "1"}}
    )
    await gateway.post(
        "/v1/track",
        json={"userId": "12345", "event": "b"},
        headers={"Authorization": "Basic d2tfd2ViOg=="},  # wk_web
    )
    await gateway.post(
        "/events",
        params={"tc_s": "29"},
        json={"event_name": "c", "event_id": "3", "properties": {"user": user}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    await gateway.post(
        "/events/batch",
        params=V2,
        json={"batch": [{"event_name": "d", "user": {"id": 12345}}]},  # a number, as sent
    )
    partitions = [await stream_messages(redis, n) for n in range(4)]
    [messages] = [p for p in partitions if p]
    assert [(m["event"], str(m["userId"])) for m in messages] == [
        ("a", "12345"),
        ("b", "12345"),
        ("c", "12345"),
        ("d", "12345"),
    ]


async def test_preflight(sourced: TestClient[Any, Any]) -> None:
    for path in ("/events", "/events/batch", "/events/"):
        response = await sourced.options(
            path, headers={"Origin": "https://shop.com", "Access-Control-Request-Method": "POST"}
        )
        assert response.status == 204


def test_sources_file(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(
        """
[[source]]
id = "web"
write_keys = ["wk"]
[source.commanders_act]
site_id = 29
source_keys = ["k1", "k2"]

[[source]]
id = "plain"
write_keys = ["wk2"]
"""
    )
    sources = Sources.from_file(path)
    web = sources.by_commanders_act_key("k2")
    assert web is not None
    assert web.id == "web"
    assert web.commanders_act == CommandersAct(site_id=29, source_keys=["k1", "k2"])
    assert sources.by_commanders_act_key("wk") is None
    plain = sources.resolve("wk2")
    assert plain is not None
    assert plain.commanders_act is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            '[[source]]\nid = "a"\nwrite_keys = []\n'
            '[source.commanders_act]\nsite_id = 1\nsource_keys = ["k"]\n'
            '[[source]]\nid = "b"\nwrite_keys = []\n'
            '[source.commanders_act]\nsite_id = 2\nsource_keys = ["k"]\n',
            "a Commanders Act source key is listed under both source 'a' and 'b'",
        ),
        (
            '[[source]]\nid = "a"\nwrite_keys = []\n'
            '[source.commanders_act]\nsite_id = 1\nsource_keys = [""]\n',
            "source_keys[0]",
        ),
        (
            '[[source]]\nid = "a"\nwrite_keys = []\n'
            '[source.commanders_act]\nsite = 1\nsource_keys = ["k"]\n',
            "unknown field `site`",
        ),
    ],
)
def test_bad_sources_file(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(text)
    with pytest.raises(SourcesError, match=error.replace("[", r"\[").replace("]", r"\]")):
        Sources.from_file(path)


@pytest.mark.slow
async def test_rejections_are_spooled_while_redis_is_away(
    make_client: MakeClient, tmp_path: Path
) -> None:
    own = RedisProcess(tmp_path / "redis")
    own.start()
    try:
        gateway = await make_client(sources=SOURCES, redis_url=own.url, redis_timeout=1.0)
        own.kill()
        batch = {"batch": [BATCH["batch"][0], {"event_name": "no user"}]}
        response = await gateway.post("/events/batch", params=V2, json=batch)
        assert response.status == 200  # both on disk: the accepted one and the rejection
        own.start()
        check = Redis.from_url(own.url)
        for _ in range(100):  # replay probes with a backoff of at most 1 s
            if await check.xlen(REJECTED_STREAM) and await check.xlen(events_key(0)):
                break
            await asyncio.sleep(0.1)
        [message] = await stream_messages(check)
        assert message["messageId"] == "202210310000000000"
        [record] = await rejections(check)
        assert (record["index"], record["body"]) == (1, {"event_name": "no user"})
        await check.aclose()
    finally:
        own.stop()


async def test_refused_events_keep_no_dedupe_state_and_little_body(
    sourced: TestClient[Any, Any], redis: Redis
) -> None:
    """A token is public and a wrong one is recorded too: what that may cost Redis is the
    trimmed stream alone, no dedupe state, and each entry short (docs/durability.md)."""
    big = {**EVENT, "pad": "x" * 5000}
    response = await sourced.post(
        "/events/batch",
        params={"tc_s": "1" * 500, "token": "nope"},
        json={"batch": [EVENT, big, EVENT]},
    )
    assert response.status == 200
    assert await redis.keys("gateway:seen:*") == []
    records = await rejections(redis)
    assert [r["reason"] for r in records] == ["unknown token"] * 3
    assert records[0]["body"] == EVENT  # under the cap: as sent
    assert records[1]["truncated"] > rejected.REFUSED_BODY
    assert len(msgspec.json.encode(records[1]["body"])) <= rejected.REFUSED_BODY + 2
    assert len(records[0]["siteId"]) <= rejected.MAX_FIELD + 1
