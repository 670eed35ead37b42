"""Logs: one JSON object a line, with request ids, and never a writeKey or a message body."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.constants import events_key
from gateway.ingest.sources import Source, Sources
from gateway.ops import logs
from gateway.ops.embedded import RedisProcess, free_port
from tests.helpers.gateway import MakeClient

KEY = "wk_live_Zq8sLEAKCHECK"
MARKER = "BODY_MARKER_7f3a9c"
SOURCES = Sources([Source(id="web", write_keys=[KEY])])


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log record of the gateway, as `gateway serve` formats it by default (JSON)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """The captured lines, each of which must be one JSON object."""
    out = []
    for line in stream.getvalue().splitlines():
        parsed = json.loads(line)
        assert isinstance(parsed, dict), line
        out.append(parsed)
    return out


def test_a_json_line_has_the_fields_and_the_request_id() -> None:
    logger = logging.getLogger("gateway.test")
    record = logger.makeRecord(
        "gateway.test", logging.WARNING, __file__, 1, "took %d", (3,), None,
        extra={"event": "redis_down", "entries": 3},
    )  # fmt: skip
    token = logs.REQUEST_ID.set("req-1")
    try:
        line = json.loads(logs.JsonFormatter().format(record))
    finally:
        logs.REQUEST_ID.reset(token)
    assert line["message"] == "took 3"
    assert (line["level"], line["logger"], line["event"]) == (
        "warning",
        "gateway.test",
        "redis_down",
    )
    assert (line["entries"], line["request_id"]) == (3, "req-1")
    assert line["time"].endswith("Z")
    assert line["pid"] > 0
    assert "request_id" not in json.loads(logs.JsonFormatter().format(record))


def test_an_exception_stays_on_one_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.getLogger("g").makeRecord(
            "g", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    text = logs.JsonFormatter().format(record)
    assert "\n" not in text
    assert "RuntimeError: boom" in json.loads(text)["exception"]


def test_text_format_and_auto() -> None:
    stream = io.StringIO()  # not a terminal: auto means JSON
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure("info", "auto", stream)
        logging.getLogger("gateway.test").info("hello", extra={"event": "startup"})
        logs.configure("info", "text", stream)
        logging.getLogger("gateway.test").info("again", extra={"event": "startup"})
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    first, second = stream.getvalue().splitlines()
    assert json.loads(first)["event"] == "startup"
    assert second.endswith("INFO again [event=startup]")
    with pytest.raises(ValueError, match="log format"):
        logs.configure("info", "xml", stream)


async def send_everything(client: TestClient[Any, Any]) -> list[str]:
    """Requests carrying the key and the marker every way there is, good and bad."""
    body = {"userId": "u1", "event": "Signed Up", "properties": {"note": MARKER}}
    broken = f'{{"note": "{MARKER}", "writeKey": "{KEY}"'
    batch = {"writeKey": KEY, "batch": [{**body, "type": "track"}, {"type": "no", "x": MARKER}]}
    pixel = base64.b64encode(json.dumps({**body, "writeKey": KEY + "x"}).encode()).decode()
    answers = [
        await client.post("/v1/track", json=body, headers=basic(KEY)),
        await client.post("/v1/track", json={**body, "writeKey": KEY}),
        await client.post(f"/v1/track?writeKey={KEY}", json=body),
        await client.post("/v1/track", json={**body, "writeKey": KEY + "x"}),  # unknown key
        await client.post("/v1/track", data=broken, headers=basic(KEY)),
        await client.post("/v1/track", json={"event": MARKER}, headers=basic(KEY)),  # no userId
        await client.post("/v1/batch", json=batch),
        await client.get("/v1/pixel/track", params={"data": pixel}),
    ]  # fmt: skip
    return [answer.headers["X-Request-Id"] for answer in answers]


async def test_no_key_and_no_body_in_the_logs(
    make_client: MakeClient, captured: io.StringIO
) -> None:
    client = await make_client(SOURCES)
    await send_everything(client)
    # And a gateway that can store nothing: Redis away, no room to spool.
    down = await make_client(
        SOURCES,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        redis_timeout=0.3,
        spool_max_bytes=1,
    )
    refused = await down.post(
        "/v1/track", json={"userId": "u", "event": MARKER}, headers=basic(KEY)
    )
    assert refused.status == 503
    text = captured.getvalue()
    assert KEY not in text
    assert MARKER not in text
    found = lines(captured)
    [unavailable] = [line for line in found if line["logger"] == "gateway.http.answering"]
    assert "503" in unavailable["message"]
    assert unavailable["request_id"] == refused.headers["X-Request-Id"]
    assert unavailable["level"] == "warning"
    assert any(line.get("event") == "redis_down" for line in found)


async def test_refusals_at_debug_carry_their_request_id_and_no_key(
    make_client: MakeClient, captured: io.StringIO
) -> None:
    logging.getLogger().setLevel(logging.DEBUG)
    client = await make_client(SOURCES)
    ids = await send_everything(client)
    assert KEY not in captured.getvalue()
    rejected = [line for line in lines(captured) if line.get("event") == "rejected"]
    # The unknown key, the bad JSON and the message without a userId, in that order.
    assert [line["request_id"] for line in rejected] == [ids[3], ids[4], ids[5]]
    assert [line["status"] for line in rejected] == [400, 400, 400]


async def test_an_outage_logs_redis_down_then_up_and_the_replay(
    make_client: MakeClient, captured: io.StringIO, tmp_path: Path
) -> None:
    server = RedisProcess(tmp_path / "redis")
    server.start()
    try:
        client = await make_client(SOURCES, redis_url=server.url, redis_timeout=0.5)
        body = {"userId": "u", "event": "E", "properties": {"note": MARKER}}
        assert (await client.post("/v1/track", json=body, headers=basic(KEY))).status == 200
        server.kill()
        for _ in range(3):  # spooled
            assert (await client.post("/v1/track", json=body, headers=basic(KEY))).status == 200
        server.start()
        redis = Redis.from_url(server.url)
        try:
            for _ in range(200):  # until replay has put the three in (bounded)
                if await redis.xlen(events_key(0)) == 4:
                    break
                await asyncio.sleep(0.05)
            assert await redis.xlen(events_key(0)) == 4
        finally:
            await redis.aclose()
    finally:
        server.stop()
    events = [line.get("event") for line in lines(captured)]
    assert events.index("redis_down") < events.index("redis_up") < events.index("replayed")
    [replayed] = [line for line in lines(captured) if line.get("event") == "replayed"]
    assert replayed["entries"] == 3
    assert KEY not in captured.getvalue()
    assert MARKER not in captured.getvalue()


SECRET_B64 = base64.b64encode(f"{KEY}:".encode()).decode()
RAW_LINES = [
    f"Invalid method encountered: b'GET\\x01 /v1/t?writeKey={KEY}&x=1 HTTP/1.1'",
    f"Bad header: b'Authorization: Basic {SECRET_B64}'",
    f"POST /events?tc_s=29&token={KEY} HTTP/1.1",
    f"GET /v1/projects/{KEY}/settings: 503",
    f"GET /analytics.js/v1/{KEY}/analytics.min.js failed",
    f'{{"writeKey": "{KEY}"}}',
    f"auth-token: {KEY}",
]


@pytest.mark.parametrize("formatter", [logs.JsonFormatter(), logs.TextFormatter()])
@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR])
def test_every_line_is_redacted_at_every_level(formatter: logging.Formatter, level: int) -> None:
    """What a line quotes of a request (a raw request line, a header) never shows a key."""
    for raw in RAW_LINES:
        try:
            raise ValueError(raw)
        except ValueError:
            record = logging.getLogger("aiohttp.server").makeRecord(
                "aiohttp.server", level, __file__, 1, "%s", (raw,), sys.exc_info()
            )
        record.details = raw
        text = formatter.format(record)
        assert KEY not in text, text
        assert SECRET_B64 not in text, text
        assert logs.REDACTED in text


def test_the_text_format_escapes_what_a_client_sent() -> None:
    """A `%0A` in a Commanders Act `tc_s` cannot forge a line of the text log."""
    forged = "29\n2026-01-01 00:00:00,000 ERROR forged"
    record = logging.getLogger("g").makeRecord(
        "g", logging.WARNING, __file__, 1, "rejected: tc_s %s", (forged,), None
    )
    record.route = "/events\r\nx"
    record.site = "a b"
    text = logs.TextFormatter().format(record)
    assert "\n" not in text
    assert "\r" not in text
    assert text.endswith(
        "WARNING rejected: tc_s 29\\n2026-01-01 00:00:00,000 ERROR forged "
        '[route="/events\\r\\nx" site="a b"]'
    )
