"""Pixels: the message in the URL, and always the 1x1 GIF back."""

from __future__ import annotations

import base64
import logging
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.http.app_keys import COMMITTER
from gateway.http.pixel import GIF, decode_base64, nest
from gateway.ingest.sources import Source, Sources
from gateway.ops.embedded import free_port
from tests.helpers.gateway import MakeClient, admin_of
from tests.helpers.metrics import parse, total, value
from tests.helpers.streams import stream_messages

KEY = "wk_mail_1"
SOURCES = Sources(
    [Source(id="mail", write_keys=[KEY]), Source(id="other", write_keys=["wk_other"])]
)


def b64(message: object, alphabet: str = "standard", padding: bool = True) -> str:
    raw = msgspec.json.encode(message)
    text = (
        base64.b64encode(raw) if alphabet == "standard" else base64.urlsafe_b64encode(raw)
    ).decode()
    return text if padding else text.rstrip("=")


async def get_gif(client: TestClient[Any, Any], url: str, **params: str) -> str | None:
    """GET a pixel; assert it is the GIF; the rejection reason, if any."""
    response = await client.get(url, params=params)
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.read() == GIF
    return response.headers.get("X-Pixel-Rejected")


def test_the_gif_is_a_transparent_1x1() -> None:
    assert GIF[:6] == b"GIF89a"
    assert int.from_bytes(GIF[6:8], "little") == 1
    assert int.from_bytes(GIF[8:10], "little") == 1
    assert len(GIF) == 43


# "+/" in the standard alphabet and "-_" in the URL-safe one: this text has both.
OPENED = {"userId": "u1", "event": "Email Opened", "properties": {"subject": "Hi?>>>~~~"}}


@pytest.mark.parametrize("alphabet", ["standard", "urlsafe"])
@pytest.mark.parametrize("padding", [True, False])
async def test_track_pixel_lands(
    client: TestClient[Any, Any], redis: Redis, alphabet: str, padding: bool
) -> None:
    data = b64(OPENED, alphabet, padding)
    assert set(data) & (set("+/") if alphabet == "standard" else set("-_"))
    assert await get_gif(client, "/v1/pixel/track", data=data) is None
    [message] = await stream_messages(redis)
    assert message["type"] == "track"
    assert message["event"] == "Email Opened"
    assert message["properties"] == OPENED["properties"]
    assert message["userId"] == "u1"
    assert message["messageId"]
    assert message["receivedAt"]


async def test_an_unescaped_plus_arrives_as_space_and_still_decodes(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    data = b64(OPENED)
    assert "+" in data
    # Hand-written URL: the "+" is not percent-encoded, so the query decodes it as a space.
    response = await client.get(f"/v1/pixel/track?data={data}")
    assert response.headers.get("X-Pixel-Rejected") is None
    assert (await stream_messages(redis))[0]["properties"] == OPENED["properties"]


@pytest.mark.parametrize(
    ("kind", "message", "field"),
    [
        ("page", {"anonymousId": "a", "name": "Newsletter"}, "name"),
        ("identify", {"userId": "u", "traits": {"plan": "pro"}}, "traits"),
        ("group", {"userId": "u", "groupId": "g1"}, "groupId"),
        ("alias", {"userId": "u", "previousId": "a"}, "previousId"),
        ("screen", {"userId": "u", "name": "Inbox"}, "name"),
    ],
)
async def test_every_type(
    client: TestClient[Any, Any], redis: Redis, kind: str, message: dict[str, Any], field: str
) -> None:
    assert await get_gif(client, f"/v1/pixel/{kind}", data=b64(message)) is None
    [landed] = await stream_messages(redis)
    assert landed["type"] == kind
    assert landed[field] == message[field]


@pytest.mark.parametrize("where", ["data", "query"])
async def test_write_key_inside_or_in_the_query(
    make_client: MakeClient, redis: Redis, where: str
) -> None:
    client = await make_client(SOURCES)
    message = dict(OPENED)
    params = {}
    if where == "data":
        message["writeKey"] = KEY
    else:
        params["writeKey"] = KEY
    assert await get_gif(client, "/v1/pixel/track", data=b64(message), **params) is None
    [landed] = await stream_messages(redis)
    assert landed["_source"] == "mail"
    assert "writeKey" not in landed


async def test_query_key_beats_the_key_inside_data(make_client: MakeClient, redis: Redis) -> None:
    # The contract's order: Basic, the body, the query, inside the pixel's `data`. A pixel
    # has no body: `data` is the message, and its key comes last (docs/decisions.md).
    client = await make_client(SOURCES)
    message = {**OPENED, "writeKey": "wk_other"}
    assert await get_gif(client, "/v1/pixel/track", data=b64(message), writeKey=KEY) is None
    [landed] = await stream_messages(redis)
    assert landed["_source"] == "mail"
    assert "writeKey" not in landed


async def test_head_answers_the_gif_headers_and_records_nothing(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    response = await client.head("/v1/pixel/track", params={"data": b64(OPENED)})
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert response.headers["Content-Length"] == str(len(GIF))
    assert await stream_messages(redis) == []


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"data": "not base64!"}, "400 Invalid base64"),
        ({"data": "abcde"}, "400 Invalid base64"),  # a length no base64 has
        ({"data": base64.b64encode(b"hello, not json").decode()}, "400 Invalid JSON"),
        ({"data": base64.b64encode(b"[1, 2]").decode()}, "400 A message must be a JSON object"),
        ({}, "400 Missing data"),
        ({"data": b64({"userId": "u", "writeKey": KEY})}, "400 Invalid message"),  # no event
        ({"data": b64({"event": "E", "writeKey": "wrong", "userId": "u"})}, None),
        ({"data": b64({"event": "E", "userId": "u"}), "writeKey": "wrong"}, None),
    ],
)
async def test_refused_pixels_still_answer_the_gif(
    make_client: MakeClient,
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
    params: dict[str, str],
    reason: str | None,
) -> None:
    client = await make_client(SOURCES)
    reason = reason or "400 Invalid or missing writekey"
    with caplog.at_level(logging.WARNING, logger="gateway.http.pixel"):
        assert await get_gif(client, "/v1/pixel/track", **params) == reason
    assert await stream_messages(redis) == []
    [record] = [r for r in caplog.records if r.name == "gateway.http.pixel"]
    assert reason in record.getMessage()
    assert "(1 pixels refused so far)" in record.getMessage()
    assert "wrong" not in record.getMessage()  # never the writeKey


async def test_missing_write_key_in_sources_mode(make_client: MakeClient, redis: Redis) -> None:
    client = await make_client(SOURCES)
    reason = await get_gif(client, "/v1/pixel/track", data=b64(OPENED))
    assert reason == "400 Invalid or missing writekey"
    assert await stream_messages(redis) == []


async def test_refusals_are_counted_and_their_warnings_rate_limited(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.http.pixel"):
        for _ in range(3):
            await get_gif(client, "/v1/pixel/page", data="%%%")
    # Anyone can send refused pixels: one line, the next at most seconds later with the
    # number left out (gateway.ops.quiet).
    [record] = [r for r in caplog.records if r.name == "gateway.http.pixel"]
    assert "(1 pixels refused so far)" in record.getMessage()
    assert getattr(record, "event", None) == "pixel_rejected"
    # And what an operator sees: the refusals counter, exactly (not merely present).
    response = await admin_of(client).get("/metrics")
    samples = parse(await response.text())
    assert value(samples, "gateway_messages_rejected_total", reason="invalid") == 3
    assert total(samples, "gateway_messages_rejected_total") == 3


async def test_oversize_query_string(client: TestClient[Any, Any], redis: Redis) -> None:
    """A message over the 32 KB limit: the contract's 413 reason, the GIF, nothing enqueued."""
    big = {"userId": "u", "event": "E", "properties": {"pad": "x" * 33_000}}
    data = b64(big)
    assert 44_000 < len(data) < 64 * 1024  # past aiohttp's own 8 KB line limit
    reason = await get_gif(client, "/v1/pixel/track", data=data)
    assert reason == "413 Message is larger than 32768 bytes"
    much_longer = "A" * 60_000  # refused on its length, before decoding
    reason = await get_gif(client, "/v1/pixel/track", data=much_longer)
    assert reason == "413 Message is larger than 32768 bytes"
    assert await stream_messages(redis) == []


async def test_redis_down_spools_the_pixel_message(make_client: MakeClient) -> None:
    client = await make_client(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout=0.3)
    assert await get_gif(client, "/v1/pixel/track", data=b64(OPENED)) is None
    assert not client.app[COMMITTER].spool.empty


async def test_nothing_durable_still_answers_the_gif(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Redis unreachable and no room to spool.
    client = await make_client(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout=0.3, spool_max_bytes=1
    )
    with caplog.at_level(logging.WARNING, logger="gateway.http.pixel"):
        reason = await get_gif(client, "/v1/pixel/track", data=b64(OPENED))
    assert reason is not None
    assert reason.startswith("503 Cannot store messages right now")
    assert "503" in caplog.records[-1].getMessage()


# RudderStack's pixel: plain query parameters.


async def test_rudderstack_pixel(make_client: MakeClient, redis: Redis) -> None:
    client = await make_client(SOURCES)
    params = {
        "writeKey": KEY,
        "anonymousId": "anon-7",
        "event": "Email Opened",
        "properties.campaign": "nov",
        "properties.order.total": "42.5",
        "context.campaign.source": "newsletter",
    }
    assert await get_gif(client, "/pixel/v1/track", **params) is None
    assert (
        await get_gif(client, "/pixel/v1/page", anonymousId="a", name="Home", writeKey=KEY) is None
    )
    track, page = await stream_messages(redis)
    assert track["type"] == "track"
    assert track["event"] == "Email Opened"
    assert track["anonymousId"] == "anon-7"
    assert track["properties"] == {"campaign": "nov", "order": {"total": "42.5"}}
    assert track["context"] == {"campaign": {"source": "newsletter"}}
    assert track["_source"] == "mail"
    assert "writeKey" not in track
    assert page["type"] == "page"
    assert page["name"] == "Home"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("event=E&anonymousId=a", "400 Invalid or missing writekey"),
        (f"writeKey={KEY}&event=E", "400 Invalid message"),  # no id
        (f"writeKey={KEY}&event=E&anonymousId=a&properties=1&properties.x=2", "400 Conflicting"),
        (f"writeKey={KEY}&event=E&anonymousId=a&properties..x=2", "400 Invalid query parameter"),
        (f"writeKey={KEY}&event=E&anonymousId=a&p=" + "x" * 33_000, "413 Message is larger"),
    ],
)
async def test_rudderstack_pixel_refusals(
    make_client: MakeClient, redis: Redis, query: str, reason: str
) -> None:
    client = await make_client(SOURCES)
    response = await client.get(f"/pixel/v1/track?{query}")
    assert response.status == 200
    assert await response.read() == GIF
    assert response.headers["X-Pixel-Rejected"].startswith(reason)
    assert await stream_messages(redis) == []


async def test_rudderstack_beacon(make_client: MakeClient, redis: Redis) -> None:
    client = await make_client(SOURCES)
    body = b'{"batch": [{"type": "track", "event": "Left", "anonymousId": "a"}]}'
    response = await client.post(
        f"/beacon/v1/batch?writeKey={KEY}", data=body, headers={"Content-Type": "text/plain"}
    )
    assert response.status == 200
    assert await response.json() == {"success": True}
    [message] = await stream_messages(redis)
    assert message["event"] == "Left"
    assert message["_source"] == "mail"
    response = await client.post("/beacon/v1/batch?writeKey=nope", data=body)
    assert response.status == 400
    assert len(await stream_messages(redis)) == 1


def test_decode_base64_accepts_both_alphabets_with_or_without_padding() -> None:
    raw = bytes(range(256))
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        assert decode_base64(encoded.decode()) == raw
        assert decode_base64(encoded.decode().rstrip("=")) == raw


def test_nest_keeps_the_first_of_a_repeated_key() -> None:
    assert nest([("a.b", "1"), ("a.b", "2"), ("c", "3"), ("writeKey", "k")]) == {
        "a": {"b": "1"},
        "c": "3",
    }
