"""What the live inspector's page asks besides its feed: the consumer groups (lag, pending,
dead letters) and a re-drive of a group's dead letters, and a test event for a source."""

from __future__ import annotations

import collections
import uuid
from typing import Any

import msgspec
from aiohttp import web

from gateway.constants import dead_letter_key, redrive_key
from gateway.control.app_keys import COMMITTER, INGEST, TAIL, Routes
from gateway.errors import JSON, ApiError, invalid
from gateway.ingest.enrich import Arrival
from gateway.ingest.sources import OPEN_SOURCE, Source
from gateway.ops import timestamps
from gateway.ops.text import as_text
from gateway.store.committer import Unavailable

REDRIVE_TTL = 3_600
"""Seconds a re-drive request waits for a worker of its group."""
TEST_EVENT = "Inspector Test Event"
TEST_USER = "inspector-test"
_encode = msgspec.json.Encoder().encode


class _TestEvent(msgspec.Struct, forbid_unknown_fields=True):
    source: str


def routes() -> Routes:
    """The routes of the page's buttons and panes."""
    return {
        "/v1/inspector/groups": {"GET": groups},
        "/v1/inspector/groups/{group}/redrive": {"POST": ask_redrive},
        "/v1/inspector/test-event": {"POST": test_event},
    }


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(body=_encode(value), status=status, content_type=JSON)


async def groups(request: web.Request) -> web.Response:
    """`GET /v1/inspector/groups`: each consumer group of the event streams, summed over
    the partitions: consumers, pending, lag (null when Redis cannot tell), dead letters,
    and the last re-drive asked from here."""
    tail = request.app[TAIL]
    redis = tail.redis
    events = [s for s in tail.streams if s.startswith("gateway:events:")]
    pipe = redis.pipeline(transaction=False)
    for stream in events:
        pipe.xinfo_groups(stream)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    totals: dict[str, collections.Counter[str]] = {}
    unknown_lag: set[str] = set()
    for infos in replies:
        if not isinstance(infos, list):
            continue  # the partition's stream does not exist yet
        for info in infos:
            name = as_text(info["name"])
            counts = totals.setdefault(name, collections.Counter())
            counts["consumers"] += int(info.get("consumers", 0))
            counts["pending"] += int(info.get("pending", 0))
            if info.get("lag") is None:
                unknown_lag.add(name)
            else:
                counts["lag"] += int(info["lag"])
    names = sorted(totals)
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.xlen(dead_letter_key(name))
        pipe.exists(redrive_key(name))
        pipe.get(f"{redrive_key(name)}:done")
    found: list[Any] = await pipe.execute() if names else []
    answer = []
    for position, name in enumerate(names):
        dead, asked, done = found[3 * position : 3 * position + 3]
        counts = totals[name]
        answer.append(
            {
                "group": name,
                "consumers": counts["consumers"],
                "pending": counts["pending"],
                "lag": None if name in unknown_lag else counts["lag"],
                "deadLetters": int(dead),
                "redriveAsked": bool(asked),
                "lastRedrive": msgspec.json.decode(done) if done else None,
            }
        )
    return _json({"groups": answer})


async def ask_redrive(request: web.Request) -> web.Response:
    """`POST /v1/inspector/groups/{group}/redrive`: ask a worker of the group to re-drive its
    dead letters (only its workers know the destinations); 202, done within seconds while
    one runs (`gateway.worker.redrive_requests`)."""
    group = request.match_info["group"]
    redis = request.app[TAIL].redis
    if not await redis.exists(dead_letter_key(group)):
        raise ApiError(404, "No dead letters", f"group {group!r} has none")
    await redis.set(redrive_key(group), timestamps.iso(timestamps.now()), ex=REDRIVE_TTL)
    return _json({"group": group, "asked": True}, status=202)


async def test_event(request: web.Request) -> web.Response:
    """`POST /v1/inspector/test-event` `{"source": "web"}`: a `track` message for the source,
    validated, enriched and stored as a real one (its policies and plan apply); 201 with its
    messageId. A disabled source's is refused (400), as its keys are."""
    try:
        body = msgspec.json.decode(await request.read(), type=_TestEvent)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise invalid("Invalid body", str(exc)) from None
    ingest = request.app[INGEST]
    source = _source(ingest.sources.configured, body.source, ingest.sources.open)
    received_at, received_iso = timestamps.received()
    arrival = Arrival(received_at=received_at, received_iso=received_iso, route="inspector")
    message: dict[str, Any] = {
        "type": "track",
        "event": TEST_EVENT,
        "userId": TEST_USER,
        "messageId": f"inspector-{uuid.uuid4()}",
        "properties": {"sentFrom": "the live inspector"},
    }
    entry = ingest.message(message, "track", arrival, source, "$")
    try:
        await request.app[COMMITTER].commit([entry] if entry.stream else [])
    except Unavailable as exc:
        raise ApiError(503, "Cannot store messages right now", str(exc)) from None
    await request.app[TAIL].watch()  # the page that asked sees the outcome
    return _json(
        {"messageId": entry.message_id, "source": source.id, "stored": bool(entry.stream)}, 201
    )


def _source(configured: tuple[Source, ...], wanted: str, open_mode: bool) -> Source:
    if open_mode and wanted == OPEN_SOURCE.id:
        return OPEN_SOURCE
    for source in configured:
        if source.id == wanted:
            if not source.enabled:
                raise invalid("Source disabled", f"{wanted!r} is disabled")
            return source
    raise ApiError(404, "No such source", repr(wanted))
