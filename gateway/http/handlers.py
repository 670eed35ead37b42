"""The event routes (`/v1/*`, RudderStack's beacon): read the body, ingest it, commit, answer.

Also what every family's handlers share: the `Arrival` of a request, the commit or 503.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import msgspec
from aiohttp import web

from gateway.errors import JSON, ApiError, invalid_write_key, partial, success, unavailable
from gateway.http import auth, refused, source_limits
from gateway.http.app_keys import COMMITTER, INGEST, METRICS
from gateway.http.body import read_body
from gateway.http.openapi_parts import (
    AUTH,
    BATCH_ANSWERS,
    BODY_NOTE,
    CONTENT_ENCODING,
    EVENT_ERRORS,
    SUCCESS,
    WRITE_KEY_QUERY,
    Family,
    Json,
    PathItems,
    alias,
    examples,
    op_id,
    operation,
    ref,
)
from gateway.ingest.enrich import Arrival
from gateway.ingest.validate import SCHEMAS, TYPES
from gateway.ops import timestamps
from gateway.store.committer import Unavailable
from gateway.store.entry import Entry

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Routes = dict[str, dict[str, Handler]]
"""Path -> method -> handler, as each route family lists its routes."""

SINGLE_PATHS = {
    "identify": ("/v1/identify", "/v1/i"),
    "track": ("/v1/track", "/v1/t"),
    "page": ("/v1/page", "/v1/p"),
    "screen": ("/v1/screen", "/v1/s"),
    "group": ("/v1/group", "/v1/g"),
    "alias": ("/v1/alias", "/v1/a"),
}
BATCH_PATHS = ("/v1/batch", "/v1/b", "/v1/import")
BEACON_PATHS = ("/beacon/v1/batch",)
"""RudderStack's `sendBeacon` batches (`?writeKey=`)."""


def arrival_of(request: web.Request) -> Arrival:
    """What the request tells about the messages in it."""
    settings = request.app[INGEST].settings
    received_at, received_iso = timestamps.received()
    return Arrival(
        received_at=received_at,
        received_iso=received_iso,
        ip=auth.client_ip(request, settings.trusted_proxies),
        browser=(origin := request.headers.get("Origin")) is not None,
        origin=origin,
        basic_key=auth.basic_username(request),
        query_key=auth.query_key(request),
        route=_route(request),
    )


def _route(request: web.Request) -> str:
    """The path pattern the request matched (`/v1/track`): no client text in it."""
    resource = request.match_info.route.resource
    return "" if resource is None else resource.canonical


def check_basic_key(request: web.Request) -> None:
    """The contract's 400 before the body is read, for a Basic key that is not accepted.

    A Basic key wins over any other (`Arrival.write_key`), so nothing in the body could
    change the answer: a client with a wrong key gets it without sending, or the gateway
    holding, its body. (A `?writeKey=` can be overridden by the body's, so it is checked
    once the body is read.)
    """
    key = auth.basic_username(request)
    if key is not None and request.app[INGEST].sources.resolve(key) is None:
        error = invalid_write_key()
        refused.request_refused(request, error)
        raise error


async def commit(request: web.Request, entries: Sequence[Entry]) -> None:
    """Make `entries` durable or answer 503 (all but those a regulation dropped); a 429 past
    a source's rate limit."""
    if request.app[INGEST].suppression.active:
        entries = [entry for entry in entries if entry.stream]  # a regulation dropped the rest
    entries = await source_limits.admit(request, entries)
    try:
        await request.app[COMMITTER].commit(entries)
    except Unavailable as exc:
        settings = request.app[INGEST].settings
        raise unavailable(f"Cannot store messages right now: {exc}", settings.retry_after) from None


def single(kind: str) -> Handler:
    """The handler of the single-message route of `kind` (`track`, `identify`, ...)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        check_basic_key(request)
        ingest = request.app[INGEST]
        body = await read_body(request, ingest.settings.max_message_bytes, "The message")
        arrival = arrival_of(request)
        try:
            entry = ingest.single(body, kind, arrival)
        except ApiError as exc:
            refused.single(request, body, arrival, exc)
            raise
        await commit(request, (entry,))
        return success()

    handle.__name__ = f"handle_{kind}"
    return handle


async def batch(request: web.Request) -> web.StreamResponse:
    """`/v1/batch`, `/v1/b`, `/v1/import`: many messages, each accepted or refused alone."""
    check_basic_key(request)
    ingest = request.app[INGEST]
    body = await read_body(request, ingest.settings.max_batch_bytes, "The batch")
    arrival = arrival_of(request)
    try:
        entries, errors = ingest.batch(body, arrival)
    except ApiError as exc:
        refused.whole_batch(request, body, arrival, exc)
        raise
    if errors:
        request.app[METRICS].tally.refused_items(errors)
        refused.batch(request, body, arrival, errors)
    await commit(request, entries)
    return partial(len(entries), errors) if errors else success()


def routes() -> Routes:
    """Path -> method -> handler of the event routes."""
    table: Routes = {}
    for kind, paths in SINGLE_PATHS.items():
        handler = single(kind)
        for path in paths:
            table[path] = {"POST": handler}
    for path in BATCH_PATHS + BEACON_PATHS:
        table[path] = {"POST": batch}
    return table


EXAMPLES: dict[str, Json] = {
    "identify": {"userId": "u-1", "traits": {"email": "ada@example.com", "plan": "pro"}},
    "track": {"userId": "u-1", "event": "Order Completed", "properties": {"total": 42.5}},
    "page": {"anonymousId": "a-7", "name": "Pricing", "properties": {"path": "/pricing"}},
    "screen": {"userId": "u-1", "name": "Checkout"},
    "group": {"userId": "u-1", "groupId": "g-3", "traits": {"name": "Acme"}},
    "alias": {"userId": "u-1", "previousId": "a-7"},
}
"""A request body of each single-message route, as the document shows it."""

BATCH_EXAMPLE: Json = {
    "batch": [
        {"type": "track", **EXAMPLES["track"]},
        {"type": "identify", **EXAMPLES["identify"]},
    ],
    "context": {"library": {"name": "analytics-python", "version": "2.3.0"}},
}


def describe() -> Family:
    """The event routes' part of the OpenAPI document."""
    items: PathItems = {}
    for kind, paths in SINGLE_PATHS.items():
        for path in paths:
            media = {"schema": ref(SCHEMAS[kind].__name__), **examples(**{kind: EXAMPLES[kind]})}
            items[path] = {
                "post": operation(
                    op_id("post", path),
                    "Events",
                    f"One `{kind}` message",
                    f"The route sets `type` to `{kind}`, whatever the body says." + BODY_NOTE,
                    parameters=[CONTENT_ENCODING, WRITE_KEY_QUERY],
                    requestBody={"required": True, "content": {JSON: media}},
                    responses={**SUCCESS, **EVENT_ERRORS},
                    security=AUTH,
                    **alias(path, paths[0]),
                )
            }
    for path in BATCH_PATHS + BEACON_PATHS:
        beacon = path in BEACON_PATHS
        what = (
            "RudderStack's `sendBeacon` batch (`?writeKey=`)."
            if beacon
            else "Many messages; each is accepted or refused alone."
        )
        media = {"schema": ref("Batch"), **examples(batch=BATCH_EXAMPLE)}
        items[path] = {
            "post": operation(
                op_id("post", path),
                "Events",
                "A batch of messages",
                what + " A key at the request level (Basic, the envelope's `writeKey`, the query) "
                "applies to every item; only without one is each item's own `writeKey` used."
                + BODY_NOTE,
                parameters=[CONTENT_ENCODING, WRITE_KEY_QUERY],
                requestBody={"required": True, "content": {JSON: media}},
                responses=BATCH_ANSWERS,
                security=AUTH,
                **alias(path, path if beacon else BATCH_PATHS[0]),
            )
        }
    return Family(items, _schemas())


_TIMESTAMPS = ("timestamp", "originalTimestamp", "sentAt")


def _schemas() -> Json:
    """The six message types, from the msgspec structs that validate them, and the batch."""
    _, components = msgspec.json.schema_components(
        SCHEMAS.values(), ref_template="#/components/schemas/{name}"
    )
    for schema in components.values():
        schema["description"] = (
            "A Segment-format message; fields not listed are stored unchanged. A non-empty "
            "`userId` or `anonymousId` is required. Timestamps are ISO-8601."
        )
        schema["properties"]["type"] = {"type": "string", "enum": list(TYPES)}
        # msgspec says `string` for a datetime; the gateway reads RFC 3339 date-times.
        for field in _TIMESTAMPS:
            for option in schema["properties"][field]["anyOf"]:
                if option["type"] == "string":
                    option["format"] = "date-time"
    return {
        **components,
        "Batch": {
            "type": "object",
            "required": ["batch"],
            "properties": {
                "batch": {
                    "type": "array",
                    "items": ref("BatchItem"),
                    "description": "At most 2,500 items by default.",
                },
                "context": {"type": "object", "description": "Merged into each item's."},
                "integrations": {"type": "object", "description": "Merged into each item's."},
                "sentAt": {
                    "type": "string",
                    "format": "date-time",
                    "description": "For items without their own.",
                },
                "writeKey": {"type": "string"},
            },
        },
        "BatchItem": {
            "type": "object",
            "required": ["type"],
            "description": "A message with its `type`; see the schema of that type.",
            "properties": {"type": {"type": "string", "enum": list(TYPES)}},
        },
    }
