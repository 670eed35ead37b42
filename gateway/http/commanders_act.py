"""Commanders Act's HTTP tracking API: `POST /events` and `POST /events/batch`.

`?tc_s={siteId}&token={sourceKey}` (v2), or `?tc_s={siteId}` with `Authorization: Bearer
{sourceKey}` (v1). Each event is mapped to a `track` message (`commanders_act`) and goes
through the same ingest and commit as `/v1/track`. As Commanders Act's documents say, the
answer is 200 whatever happens to the events, and 400 only for invalid JSON or a request
too large; an event that cannot be accepted goes to the rejected-events stream instead
(`rejected`). A v1 request is answered with a `Deprecation` header.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from aiohttp import web

from gateway.dialects import commanders_act
from gateway.errors import JSON, ApiError, invalid, success
from gateway.http import handlers
from gateway.http.app_keys import INGEST, REDIS
from gateway.http.body import read_body
from gateway.http.commanders_act_caller import Caller, authenticate, source_key
from gateway.http.handlers import Routes
from gateway.http.openapi_parts import (
    CONTENT_ENCODING,
    EVENT_ERRORS,
    SUCCESS,
    Family,
    Json,
    PathItems,
    error,
    error_body,
    examples,
    op_id,
    operation,
)
from gateway.ingest.enrich import Arrival
from gateway.ingest.pipeline import Ingest
from gateway.ingest.validate import (
    UNDECODABLE,
    check_depth,
    decode_json,
    may_nest_past,
    undecodable,
)
from gateway.store import rejected
from gateway.store.entry import Entry

EVENT_PATH = "/events"
BATCH_PATH = "/events/batch"
DEPRECATION = "@1701388800"
"""RFC 9745's `Deprecation` value for v1: 2023-12-01, when Commanders Act retired it."""

Mapper = Callable[[dict[str, Any], str | None], dict[str, Any]]


class _Envelope(msgspec.Struct):
    batch: list[msgspec.Raw]


_decode_envelope = msgspec.json.Decoder(_Envelope).decode


def routes() -> Routes:
    """Path -> method -> handler of the Commanders Act routes."""
    reporter = rejected.Reporter()

    async def handle_event(request: web.Request) -> web.StreamResponse:
        return await event(request, reporter)

    async def handle_batch(request: web.Request) -> web.StreamResponse:
        return await batch(request, reporter)

    return {EVENT_PATH: {"POST": handle_event}, BATCH_PATH: {"POST": handle_batch}}


async def event(request: web.Request, reporter: rejected.Reporter) -> web.StreamResponse:
    """`POST /events`: one event, v2 or v1."""
    ingest = request.app[INGEST]
    body = await _read(request, ingest.settings.max_message_bytes, "The event")
    value = _json(body)
    token, bearer = source_key(request)
    v1 = commanders_act.is_v1(value, bearer)
    caller = authenticate(ingest.sources, token, request.query.get("tc_s"))
    dialect, mapper = (
        (commanders_act.V1, commanders_act.from_v1)
        if v1
        else (commanders_act.V2, commanders_act.from_v2)
    )
    await _ingest(request, reporter, caller, dialect, mapper, [(None, body, value)])
    return _answer(v1 or bearer)


async def batch(request: web.Request, reporter: rejected.Reporter) -> web.StreamResponse:
    """`POST /events/batch`: `{"batch": [...]}` of v2 events (v1 had no batch)."""
    ingest = request.app[INGEST]
    settings = ingest.settings
    body = await _read(request, settings.max_batch_bytes, "The batch")
    token, bearer = source_key(request)
    caller = authenticate(ingest.sources, token, request.query.get("tc_s"))
    try:
        items = _decode_envelope(body).batch
    except msgspec.ValidationError as exc:
        # msgspec may stop at the first unexpected type: only valid JSON is a rejection.
        _json(body)
        await _reject(request, reporter, caller, f"not a batch: {exc}", body)
        return _answer(bearer)
    except UNDECODABLE as exc:
        raise undecodable(body, exc, _BODY) from None
    if len(items) > settings.max_batch_items:
        raise invalid(
            "Request too large",
            f"the batch has {len(items)} events, more than {settings.max_batch_items}",
        )
    for index, raw in enumerate(items):
        if len(raw) > settings.max_message_bytes:
            raise invalid(
                "Request too large",
                f"event {index} of the batch is {len(raw)} bytes, "
                f"more than {settings.max_message_bytes}",
            )
    # The envelope's decoder skips over the items: each may still be invalid UTF-8.
    events = [(index, bytes(raw), _json(raw)) for index, raw in enumerate(items)]
    await _ingest(request, reporter, caller, commanders_act.V2, commanders_act.from_v2, events)
    return _answer(bearer)


def _answer(deprecated: bool) -> web.Response:
    response = success()
    if deprecated:
        response.headers["Deprecation"] = DEPRECATION
    return response


async def _ingest(
    request: web.Request,
    reporter: rejected.Reporter,
    caller: Caller,
    dialect: str,
    mapper: Mapper,
    events: Sequence[tuple[int | None, bytes, object]],
) -> None:
    """Map, validate and enrich each event; commit the accepted and the rejected together."""
    ingest = request.app[INGEST]
    arrival = handlers.arrival_of(request)
    entries: list[Entry] = []
    refused: list[Entry] = []
    latest = ""
    for index, raw, value in events:
        try:
            entries.append(_accept(ingest, caller, mapper, arrival, index, raw, value))
        except (commanders_act.MappingError, ApiError) as exc:
            latest = str(exc) if isinstance(exc, commanders_act.MappingError) else exc.summary
            refused.append(_record(request, caller, dialect, latest, raw, index, arrival))
    await handlers.commit(request, entries + refused)  # nothing to commit returns at once
    if refused:
        reporter.note(len(refused), _describe(request, caller, latest))
        await rejected.trim(request.app[REDIS])


def _accept(
    ingest: Ingest,
    caller: Caller,
    mapper: Mapper,
    arrival: Arrival,
    index: int | None,
    raw: bytes,
    value: object,
) -> Entry:
    if caller.refusal is not None or caller.source is None:
        raise commanders_act.MappingError(caller.refusal or "unknown token")
    if not isinstance(value, dict):
        raise commanders_act.MappingError("an event must be a JSON object")
    message = mapper(value, caller.site_id)
    path = "$" if index is None else f"$.batch[{index}]"
    limit = ingest.settings.max_depth
    # The mapping nests the client's fields at most two levels deeper than it sent them.
    if may_nest_past(raw, limit - 2):
        check_depth(message, limit, path)
    return ingest.message(message, "track", arrival, caller.source, path)


async def _reject(
    request: web.Request, reporter: rejected.Reporter, caller: Caller, reason: str, body: bytes
) -> None:
    """Commit the rejection of a whole batch request that holds no event to try."""
    arrival = handlers.arrival_of(request)
    record = _record(request, caller, commanders_act.V2, reason, body, None, arrival)
    await handlers.commit(request, (record,))
    reporter.note(1, _describe(request, caller, reason))
    await rejected.trim(request.app[REDIS])


def _record(
    request: web.Request,
    caller: Caller,
    dialect: str,
    reason: str,
    body: bytes,
    index: int | None,
    arrival: Arrival,
) -> Entry:
    return rejected.entry(
        reason,
        source=caller.source.id if caller.source else None,
        dialect=dialect,
        body=body,
        received_at=arrival.received_iso,
        route=request.path,
        site_id=caller.site_id,
        index=index,
        # A refused caller's events are anyone's: kept short (see `rejected.REFUSED_BODY`).
        max_body=(
            0  # a source whose personal data must not be stored as sent: no body at all
            if _redacts(request, caller)
            else rejected.REFUSED_BODY
            if caller.refusal is not None
            else request.app[INGEST].settings.max_message_bytes
        ),
    )


def _redacts(request: web.Request, caller: Caller) -> bool:
    if caller.source is None:
        return False
    enforcer = request.app[INGEST].sources.enforcers.get(caller.source.id)
    return enforcer is not None and enforcer.redacts


def _describe(request: web.Request, caller: Caller, reason: str) -> str:
    # The path only: the query string holds the token.
    source = caller.source.id if caller.source else "unknown"
    return f"{request.path} source {source} tc_s {caller.site_id}: {reason}"


async def _read(request: web.Request, limit: int, what: str) -> bytes:
    """The body; a too large or unreadable one is Commanders Act's 400, not a 413 or 415."""
    try:
        return await read_body(request, limit, what)
    except ApiError as exc:
        if exc.status in (413, 415):
            raise invalid(
                "Request too large" if exc.status == 413 else exc.message, exc.details
            ) from None
        raise


_BODY = "the body"


def _json(body: bytes | msgspec.Raw) -> object:
    """Any JSON value; the 400 for invalid JSON or UTF-8."""
    return decode_json(body, _BODY)


_V2_EXAMPLE: Json = {
    "event_name": "purchase",
    "value": 42.5,
    "currency": "EUR",
    "user": {"id": "u-1", "consistent_anonymous_id": "a-7"},
    "context": {"event_id": "e-1", "event_timestamp": 1701388800000},
}


def describe() -> Family:
    """`/events` and `/events/batch`, for the OpenAPI document."""
    query = [
        {
            "name": "tc_s",
            "in": "query",
            "required": False,
            "description": "The Commanders Act site id; must match the source's `site_id`.",
            "schema": {"type": "string"},
        },
        {
            "name": "token",
            "in": "query",
            "required": False,
            "description": "The source key (v2); v1 sends it as `Authorization: Bearer`.",
            "schema": {"type": "string"},
        },
        CONTENT_ENCODING,
    ]
    answers = {
        "200": {
            **SUCCESS["200"],
            "description": "Taken: every event is stored, or (refused key, unmappable event) "
            "recorded in the `gateway:rejected` stream with the reason.",
            "headers": {
                "Deprecation": {
                    "description": "On a v1 request: v1 is deprecated (RFC 9745).",
                    "schema": {"type": "string"},
                }
            },
        },
        "400": error(
            "Invalid JSON or UTF-8, an unsupported `Content-Encoding`, or too large "
            "(32 KB per event, 500 KB per batch): nothing stored.",
            error_body("Bad Request", "Request too large", "the batch has 3000 events"),
        ),
        "503": EVENT_ERRORS["503"],
    }
    batch_schema = {
        "type": "object",
        "required": ["batch"],
        "properties": {"batch": {"type": "array"}},
    }
    described = (
        (
            EVENT_PATH,
            "One Commanders Act event (v2, or v1 with a Bearer key)",
            {"type": "object"},
            _V2_EXAMPLE,
        ),
        (BATCH_PATH, "A batch of Commanders Act v2 events", batch_schema, {"batch": [_V2_EXAMPLE]}),
    )
    items: PathItems = {}
    for path, summary, schema, example in described:
        items[path] = {
            "post": operation(
                op_id("post", path),
                "Commanders Act",
                summary,
                "Mapped to a Segment `track` message; see docs/commanders-act.md. Answers as "
                "Commanders Act's documents say: 200 for everything parseable, 400 otherwise.",
                parameters=query,
                requestBody={
                    "required": True,
                    "content": {JSON: {"schema": schema, **examples(v2=example)}},
                },
                responses=answers,
                security=[{}, {"bearerAuth": []}],
            )
        }
    return Family(items)
