"""Intilery's HTTP tracking API: `POST /track/{clientId}/{accountId}/{brandId}/v1/{action}`.

A request is checked in this order: the `auth-token` header (403), the token's rights on
the account and brand (403), the token's rate limit (429), the body's size (413), then
each message goes through the same validate -> enrich -> commit path as `/v1/*` (400,
503). Answers are in Intilery's shape, `{"success": ..., "eventId" | "message": ...}`,
rendered here so that the Segment routes keep theirs. See docs/intilery.md.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from gateway.dialects import intilery as mapping
from gateway.errors import JSON, ApiError, invalid, too_large
from gateway.http import handlers, refused
from gateway.http.app_keys import INGEST, LIMITER, METRICS
from gateway.http.body import read_body
from gateway.http.handlers import Routes
from gateway.http.openapi_parts import (
    BODY_NOTE,
    CONTENT_ENCODING,
    RETRY_AFTER,
    Family,
    Json,
    examples,
    json_answer,
    op_id,
    operation,
    ref,
)
from gateway.ingest.enrich import Arrival, merge_batch_defaults
from gateway.ingest.intilery_source import DEFAULT_BURST, DEFAULT_RATE
from gateway.ingest.pipeline import Ingest
from gateway.ingest.sources import OPEN_SOURCE, Source, Sources
from gateway.ingest.validate import decode_batch, decode_object, parse_datetime
from gateway.store.entry import Entry
from gateway.store.ratelimit import Limit

ACTIONS = (*mapping.SINGLE_ACTIONS, "batch")
PATH = "/track/{clientId}/{accountId}/{brandId}/v1/"
TOKEN_HEADER = "auth-token"
MAX_REQUEST_BYTES = 1024 * 1024
"""Intilery's limit on any request ("1mb"); each message also has the gateway's own."""

NO_TOKEN = "No Token Supplied"
NOT_AUTHORISED = "Token Not Authorised"
RATE_LIMITED = "Rate limit exceeded"
DEFAULT_LIMIT = Limit(DEFAULT_RATE, DEFAULT_BURST)

_encode = msgspec.json.Encoder().encode


def routes() -> Routes:
    """Path template -> method -> handler of the Intilery routes."""
    return {PATH + "{action}": {"POST": handle}}


async def handle(request: web.Request) -> web.StreamResponse:
    """Any Intilery route; every refusal in Intilery's answer shape."""
    try:
        return await _handle(request)
    except ApiError as exc:
        request.app[METRICS].tally.refused(exc)  # answered here, not by gateway.http.observe
        if exc.status != 503:  # not refused: Redis and the spool were away
            refused.request_refused(request, exc)
        return error_response(exc)


async def _handle(request: web.Request) -> web.StreamResponse:
    # Split as the tolerant routing matched it: doubled and trailing slashes count for none.
    parts = [part for part in request.path.split("/") if part]
    if len(parts) != 6:
        raise ApiError(404, "No such route", request.path)
    _, client, account_id, brand, _, action = parts
    if action not in ACTIONS:
        raise ApiError(404, f"Unknown action {action!r}", f"one of {', '.join(ACTIONS)}")
    ingest = request.app[INGEST]
    token = request.headers.get(TOKEN_HEADER, "").strip()
    if not token:
        raise ApiError(403, NO_TOKEN)
    source, limit = authorise(ingest.sources, client, account_id, brand, token)
    decision = await request.app[LIMITER].check(f"intilery:{token}", limit)
    if not decision.allowed:
        raise ApiError(429, RATE_LIMITED, headers={"Retry-After": str(decision.retry_after)})
    account = mapping.Account(client.lower(), account_id.lower(), brand)
    arrival = handlers.arrival_of(request)
    settings = ingest.settings
    if action == "batch":
        body = await read_body(request, MAX_REQUEST_BYTES, "The request")
        entries = _batch(ingest, body, arrival, source, account)
    else:
        limit_bytes = min(settings.max_message_bytes, MAX_REQUEST_BYTES)
        body = await read_body(request, limit_bytes, "The message")
        message = decode_object(body, "$")
        ingest.check_depth(body, message, "$")
        kind = mapping.single(message, action, account)
        entries = [ingest.message(message, kind, arrival, source, "$")]
    await handlers.commit(request, entries)
    answer: dict[str, Any] = {"success": True, "eventId": entries[0].message_id}
    if action == "batch":
        answer["eventIds"] = [entry.message_id for entry in entries]
    return web.Response(body=_encode(answer), content_type=JSON)


def authorise(
    sources: Sources, client: str, account: str, brand: str, token: str
) -> tuple[Source, Limit]:
    """The source the request is for and its token's limit; 403 unless `token` has rights.

    In open mode (no sources file) every account takes any token, at the default limit.
    """
    if sources.open:
        return OPEN_SOURCE, DEFAULT_LIMIT
    source = sources.intilery(client, account, token, brand)
    if source is None or source.intilery is None:
        raise ApiError(403, NOT_AUTHORISED)
    return source, Limit(source.intilery.rate, source.intilery.burst)


def _batch(
    ingest: Ingest, body: bytes, arrival: Arrival, source: Source, account: mapping.Account
) -> list[Entry]:
    """Every item's entry; a batch with a bad item is refused whole (nothing is stored),
    naming each bad item, since Intilery's answer has no room for a partial success."""
    envelope = decode_batch(body)
    settings = ingest.settings
    if not envelope.batch:
        raise invalid("batch must not be empty")
    if len(envelope.batch) > settings.max_batch_items:
        raise too_large(
            f"The batch has {len(envelope.batch)} items, more than {settings.max_batch_items}"
        )
    if envelope.sentAt is not None:
        parse_datetime(envelope.sentAt, "$.sentAt")
    entries: list[Entry] = []
    errors: list[tuple[int, ApiError]] = []
    for index, raw in enumerate(envelope.batch):
        path = f"$.batch[{index}]"
        try:
            if len(raw) > settings.max_message_bytes:
                raise too_large(
                    f"Message is larger than {settings.max_message_bytes} bytes",
                    f"{path} is {len(raw)} bytes",
                )
            item = decode_object(raw, path)
            ingest.check_depth(bytes(raw), item, path)  # per item, as /v1/batch does
            merge_batch_defaults(item, envelope.context, envelope.integrations, envelope.sentAt)
            kind = mapping.batch_item(item, account, path)
            entries.append(ingest.message(item, kind, arrival, source, path))
        except ApiError as exc:
            errors.append((index, exc))
    if errors:
        raise BatchRefused(errors)
    return entries


class BatchRefused(ApiError):
    """A batch with bad items: the first one's answer, and every bad item listed."""

    def __init__(self, errors: list[tuple[int, ApiError]]) -> None:
        _, first = errors[0]
        super().__init__(first.status, first.message, first.details)
        self.items = errors


def error_response(exc: ApiError) -> web.Response:
    """`{"success": false, "message": ...}` (and a refused batch's `errors`)."""
    body: dict[str, Any] = {"success": False, "message": exc.summary}
    if isinstance(exc, BatchRefused):
        body["errors"] = [{"index": index, "message": error.summary} for index, error in exc.items]
    return web.Response(
        status=exc.status, body=_encode(body), content_type=JSON, headers=exc.headers
    )


def describe() -> Family:
    """Intilery's `/track/{clientId}/{accountId}/{brandId}/v1/{action}`, for the document."""

    def error(description: str, message: str, headers: Json | None = None) -> Json:
        example = {"success": False, "message": message}
        return json_answer(description, ref("IntileryError"), headers, example)

    segment = {"in": "path", "required": True, "schema": {"type": "string"}}
    parameters = [
        {"name": "clientId", "description": "Lower case, as in the Intilery login URL.", **segment},
        {"name": "accountId", "description": "Lower case; often the clientId.", **segment},
        {
            "name": "brandId",
            "description": "Case-sensitive; often the accountId in upper case.",
            **segment,
        },
        {
            "name": "action",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": list(ACTIONS)},
        },
        {**CONTENT_ENCODING},
    ]
    track = {"userId": "u-1", "event": "Added to Basket", "properties": {"sku": "X-1"}}
    path = PATH + "{action}"
    stored = {"success": True, "eventId": "0b4c7b8e-2f1a-4c55-9a5e-3f1d2e6b7a90"}
    return Family(
        {
            path: {
                "post": operation(
                    op_id("post", path),
                    "Intilery",
                    "A message or batch in Intilery's dialect",
                    "The action sets the type; the body's `event` repeats it (`identify`, "
                    "`page`) or names the tracked event. In a batch each item's `event` names "
                    "its method (`identify`, `page`, `screen`, `group`), any other value being "
                    "a track of that name; the batch's `context` is merged into each item. A "
                    "batch is stored whole or not at all." + BODY_NOTE,
                    parameters=parameters,
                    requestBody={
                        "required": True,
                        "content": {
                            JSON: {
                                "schema": {"type": "object"},
                                **examples(track=track, batch={"batch": [track]}),
                            }
                        },
                    },
                    responses={
                        "200": json_answer(
                            "Stored: `eventId` is the messageId (a batch's first; `eventIds` "
                            "lists each item's).",
                            ref("IntileryAnswer"),
                            example=stored,
                        ),
                        "400": error(
                            "Invalid JSON or message, or a batch with a bad item.", "Invalid JSON"
                        ),
                        "403": error(
                            "`No Token Supplied`, or `Token Not Authorised` for this account or "
                            "brand.",
                            NOT_AUTHORISED,
                        ),
                        "404": error("An action other than the five.", "Unknown action 'buy'"),
                        "413": error(
                            "The request is past 1 MB, or a message past 32 KB.",
                            "The request is larger than 1048576 bytes",
                        ),
                        "415": error(
                            "A `Content-Encoding` other than gzip, deflate or identity.",
                            "Unsupported Content-Encoding 'br'",
                        ),
                        "429": error(
                            "The token is past its rate limit (100/s, bursts to 500).",
                            RATE_LIMITED,
                            RETRY_AFTER,
                        ),
                        "503": error(
                            "The messages could not be made durable in time.",
                            "Cannot store messages right now",
                            RETRY_AFTER,
                        ),
                    },
                    security=[{"intileryToken": []}],
                )
            }
        },
        _SCHEMAS,
    )


_SCHEMAS: Json = {
    "IntileryAnswer": {
        "type": "object",
        "required": ["success", "eventId"],
        "properties": {
            "success": {"const": True},
            "eventId": {"type": "string"},
            "eventIds": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": False,
    },
    "IntileryError": {
        "type": "object",
        "required": ["success", "message"],
        "properties": {
            "success": {"const": False},
            "message": {"type": "string"},
            "errors": {
                "type": "array",
                "description": "A refused batch's bad items.",
                "items": {
                    "type": "object",
                    "required": ["index", "message"],
                    "properties": {
                        "index": {"type": "integer", "minimum": 0},
                        "message": {"type": "string"},
                    },
                },
            },
        },
        "additionalProperties": False,
    },
}
