"""Body decoding and the size limits, enforced while reading and while inflating."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from base64 import b64encode
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from tests.helpers.gateway import MakeClient
from tests.helpers.streams import stored, stream_messages

TRACK = {"userId": "u1", "event": "E"}


def padded(size: int) -> dict[str, Any]:
    """A track message whose JSON is exactly `size` bytes."""
    message: dict[str, Any] = {**TRACK, "properties": {"pad": ""}}
    missing = size - len(json.dumps(message, separators=(",", ":")))
    message["properties"]["pad"] = "x" * missing
    return message


def compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def nested(depth: int) -> dict[str, Any]:
    """A message nesting objects `depth` levels deep, the message itself being level 1."""
    inner: dict[str, Any] = {}
    for _ in range(depth - 2):
        inner = {"n": inner}
    return {**TRACK, "properties": inner}


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", None, "application/x-www-form-urlencoded"]
)
async def test_body_is_json_whatever_the_content_type(
    client: TestClient[Any, Any], redis: Redis, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/v1/track", data=compact(TRACK), headers=headers)
    assert response.status == 200
    assert len(await stream_messages(redis)) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"userId": "u1", "event": }', "Invalid JSON"),
        (b"", "Invalid JSON"),
        (b'{"userId": "u1", "event": "caf\xe9"}', "Invalid UTF-8"),
        (b'{"userId": "u1", "event": "\xff\xfe"}', "Invalid UTF-8"),
        (b'["not", "an", "object"]', "A message must be a JSON object"),
        (b'{"userId": "u1", "event": "E", "n": 1e999}', "Invalid JSON"),
    ],
)
async def test_undecodable_body_is_400(
    client: TestClient[Any, Any], redis: Redis, body: bytes, message: str
) -> None:
    response = await client.post("/v1/track", data=body)
    assert response.status == 400
    answer = await response.json()
    assert answer["Error"] == "Bad Request"
    assert answer["Message"] == message
    assert answer["Details"]
    assert await stored(redis) == []


async def test_invalid_utf8_in_one_batch_item_fails_that_item(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    body = b'{"batch": [{"type":"track","userId":"u","event":"ok"},' + (
        b'{"type":"track","userId":"u","event":"\xff"}]}'
    )
    response = await client.post("/v1/batch", data=body)
    assert response.status == 207
    answer = await response.json()
    assert [(e["Index"], e["Message"]) for e in answer["Errors"]] == [(1, "Invalid UTF-8")]
    assert [m["event"] for m in await stream_messages(redis)] == ["ok"]


BAD_UTF8 = b'{"userId": "u1", "event": "caf\xe9"}'
BAD_JSON = b'{"userId": "u1", "event": }'


@pytest.mark.parametrize(
    "path",
    [
        "/v1/track",
        "/v1/batch",
        "/v1/webhook",
        "/events",
        "/events/batch",
        "/track/acme/shop/SHOP/v1/track",
        "/track/acme/shop/SHOP/v1/batch",
    ],
)
@pytest.mark.parametrize(
    ("body", "message"), [(BAD_UTF8, "Invalid UTF-8"), (BAD_JSON, "Invalid JSON")]
)
async def test_every_route_family_answers_an_undecodable_body_alike(
    client: TestClient[Any, Any], redis: Redis, path: str, body: bytes, message: str
) -> None:
    if path.endswith("batch"):
        body = b'{"batch": [' + body + b"]}"
    response = await client.post(path, data=body, headers={"auth-token": "t"})
    assert response.status == 400
    answer = await response.json()
    if "Errors" in answer:  # `/v1/batch`: an item that does not decode fails alone (a 400 here)
        [answer] = answer["Errors"]
    # Intilery's routes answer in Intilery's shape: `message` is "Message: Details".
    said = answer.get("Message") or answer["message"].partition(":")[0]
    assert said == message
    assert await stream_messages(redis) == []


@pytest.mark.parametrize(
    ("body", "message"), [(BAD_UTF8, "Invalid UTF-8"), (BAD_JSON, "Invalid JSON")]
)
async def test_a_pixel_names_an_undecodable_message_alike(
    client: TestClient[Any, Any], body: bytes, message: str
) -> None:
    response = await client.get("/v1/pixel/track", params={"data": b64encode(body).decode()})
    assert response.status == 200
    assert response.headers["X-Pixel-Rejected"] == f"400 {message}"


async def test_invalid_json_batch_is_400(client: TestClient[Any, Any], redis: Redis) -> None:
    response = await client.post("/v1/batch", data=b'{"batch": [{"type": "track",}]}')
    assert response.status == 400
    assert (await response.json())["Message"] == "Invalid JSON"


async def test_single_message_limit(client: TestClient[Any, Any], redis: Redis) -> None:
    assert (await client.post("/v1/track", data=compact(padded(32 * 1024)))).status == 200
    response = await client.post("/v1/track", data=compact(padded(32 * 1024 + 1)))
    assert response.status == 413
    answer = await response.json()
    assert answer["Error"] == "Request Entity Too Large"
    assert "32768" in answer["Message"]
    assert len(await stream_messages(redis)) == 1


async def test_single_message_limit_without_content_length(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # chunked transfer: no Content-Length
        data = compact(padded(40 * 1024))
        for start in range(0, len(data), 4096):
            yield data[start : start + 4096]

    response = await client.post("/v1/track", data=chunks())
    assert response.status == 413
    assert await stored(redis) == []


async def test_oversized_batch_item_fails_alone(client: TestClient[Any, Any], redis: Redis) -> None:
    batch = [
        {**TRACK, "type": "track", "event": "first"},
        {**padded(33 * 1024), "type": "track"},
        {**TRACK, "type": "track", "event": "last"},
    ]
    response = await client.post("/v1/batch", data=compact({"batch": batch}))
    assert response.status == 207
    answer = await response.json()
    assert answer["Accepted"] == 2
    [error] = answer["Errors"]
    assert error["Index"] == 1
    assert error["Error"] == "Request Entity Too Large"
    assert [m["event"] for m in await stream_messages(redis)] == ["first", "last"]


async def test_batch_byte_limit(client: TestClient[Any, Any], redis: Redis) -> None:
    item = {**padded(10 * 1024), "type": "track"}
    response = await client.post("/v1/batch", data=compact({"batch": [item] * 51}))
    assert response.status == 413
    assert "larger than 512000 bytes" in (await response.json())["Message"]
    assert await stored(redis) == []


async def test_batch_item_count_limit(make_client: MakeClient, redis: Redis) -> None:
    client = await make_client(max_batch_items=3)
    item = {**TRACK, "type": "track"}
    assert (await client.post("/v1/batch", json={"batch": [item] * 3})).status == 200
    response = await client.post("/v1/batch", json={"batch": [item] * 4})
    assert response.status == 413
    assert "4 items, more than 3" in (await response.json())["Message"]
    assert len(await stream_messages(redis)) == 3


async def test_default_batch_item_count_limit(client: TestClient[Any, Any], redis: Redis) -> None:
    item = {"type": "track", "userId": "u", "event": "E"}
    response = await client.post("/v1/batch", data=compact({"batch": [item] * 2501}))
    assert response.status == 413
    assert await stored(redis) == []


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as HTTP defines deflate
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as many send
    ],
)
async def test_compressed_bodies(
    client: TestClient[Any, Any], redis: Redis, encoding: str, compress: Any
) -> None:
    body = compact({"batch": [{**TRACK, "type": "track"}] * 3})
    response = await client.post(
        "/v1/batch", data=compress(body), headers={"Content-Encoding": encoding}
    )
    assert response.status == 200
    assert len(await stream_messages(redis)) == 3


async def test_gzip_that_inflates_past_the_limit_is_413(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    # 2 KB on the wire, 200 MB once inflated: refused once 32 KB have been inflated.
    bomb = gzip.compress(b'{"userId":"u","event":"E","p":"' + b"x" * 200_000_000 + b'"}')
    assert len(bomb) < 300_000
    response = await client.post("/v1/track", data=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status == 413
    assert await stored(redis) == []
    # The process keeps serving.
    assert (await client.post("/v1/track", json=TRACK)).status == 200


async def test_gzip_batch_limit_applies_to_inflated_size(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    item = {**padded(10 * 1024), "type": "track"}
    body = gzip.compress(compact({"batch": [item] * 60}))  # 600 KB inflated, ~1 KB sent
    response = await client.post("/v1/batch", data=body, headers={"Content-Encoding": "gzip"})
    assert response.status == 413
    assert await stored(redis) == []


@pytest.mark.parametrize(
    ("body", "encoding", "status"),
    [
        (b"\x1f\x8b\x08\x00garbage-garbage-garbage", "gzip", 400),
        (gzip.compress(compact(TRACK))[:-10], "gzip", 400),  # truncated
        (compact(TRACK), "br", 415),
    ],
)
async def test_broken_or_unsupported_encoding(
    client: TestClient[Any, Any], redis: Redis, body: bytes, encoding: str, status: int
) -> None:
    response = await client.post("/v1/track", data=body, headers={"Content-Encoding": encoding})
    assert response.status == status
    assert (await response.json())["Message"]
    assert await stored(redis) == []


async def test_huge_body_is_refused_before_it_is_read(client: TestClient[Any, Any]) -> None:
    # Announce 1 GB, send 1 MB, and the answer is already there: nothing waited for the rest.
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n"
        + b"[" * 1_000_000
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413")


async def test_huge_chunked_body_is_refused_after_the_limit(
    client: TestClient[Any, Any],
) -> None:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    for _ in range(16):  # 1 MB, twice the batch limit, and the body never ends
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413")


async def test_depth_limit(client: TestClient[Any, Any], redis: Redis) -> None:
    assert (await client.post("/v1/track", json=nested(64))).status == 200
    response = await client.post("/v1/track", json=nested(65))
    assert response.status == 400
    assert "deeper than 64" in (await response.json())["Details"]
    response = await client.post(
        "/v1/batch",
        json={"batch": [{**nested(64), "type": "track"}, {**nested(65), "type": "track"}]},
    )
    assert response.status == 207
    assert [e["Index"] for e in (await response.json())["Errors"]] == [1]
    assert len(await stream_messages(redis)) == 2


async def test_absurd_depth_is_a_clear_400(client: TestClient[Any, Any], redis: Redis) -> None:
    body = b'{"userId":"u","event":"E","p":' + b"[" * 15000 + b"]" * 15000 + b"}"
    response = await client.post("/v1/track", data=body)
    assert response.status == 400
    assert await stored(redis) == []


async def _raw(client: TestClient[Any, Any], *parts: bytes, pause: float = 0.1) -> bytes:
    """Send `parts` on one connection, `pause` apart; what the gateway answers."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    for part in parts:
        writer.write(part)
        await writer.drain()
        await asyncio.sleep(pause)
    answer = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    return answer


HEAD = b"POST /v1/t HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"


async def test_a_body_that_stops_arriving_is_answered_408(make_client: MakeClient) -> None:
    client = await make_client(body_timeout=0.5)
    answer = await _raw(client, HEAD % 100 + b'{"userId": "u"')
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert json.loads(body)["Message"] == "Request Timeout"


async def test_bodies_past_the_process_memory_are_answered_503(
    make_client: MakeClient, redis: Redis
) -> None:
    client = await make_client(body_memory=1000, retry_after=7)
    message = json.dumps({"userId": "u", "event": "E", "properties": {"pad": "x" * 1500}})
    data = message.encode()
    answer = await _raw(client, HEAD % len(data) + data[:600], data[600:])
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 "), head
    assert b"Retry-After: 7" in head
    assert "Too many request bodies" in json.loads(body)["Message"]
    # What a refused body held is given back: a body under the cap is taken.
    small = b'{"userId": "u", "event": "E"}'
    answer = await _raw(client, HEAD % len(small) + small[:10], small[10:])
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert len(await stream_messages(redis)) == 1
