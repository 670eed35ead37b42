"""Webhooks: another platform's payload, accepted as it comes.

`POST /v1/webhook?writeKey=K` (or `/v1/w`). A body that already is a Segment message (a
`type` the gateway knows) or batch (`{"batch": [...]}`) is ingested as such. Anything else,
a JSON object, a JSON array or a form, is wrapped as a `track` message, so Stripe-, GitHub-
or Shopify-style webhooks land without code; see `wrap` for its shape.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from gateway import __version__
from gateway.errors import JSON, ApiError, bad_request, invalid, partial, success, too_large
from gateway.http import handlers, refused
from gateway.http.app_keys import INGEST, METRICS
from gateway.http.body import read_body
from gateway.http.handlers import Routes
from gateway.http.openapi_parts import (
    AUTH,
    BATCH_ANSWERS,
    CONTENT_ENCODING,
    WRITE_KEY_QUERY,
    Family,
    PathItems,
    alias,
    examples,
    op_id,
    operation,
)
from gateway.ingest.sources import Source
from gateway.ingest.validate import TYPES, UNDECODABLE, check_depth, may_nest_past, undecodable

PATHS = ("/v1/webhook", "/v1/w")
FORM = "application/x-www-form-urlencoded"
LIBRARY = {"name": "webhook", "version": __version__}

_HIDDEN_HEADER_PARTS = ("signature", "secret", "token", "auth", "key", "cookie", "hmac", "forward")
"""`X-` headers whose name has one of these are not kept: credentials and proxy hops."""

Payload = dict[str, Any] | list[Any]


def routes() -> Routes:
    """Path -> method -> handler of the webhook routes."""
    return {path: {"POST": handle} for path in PATHS}


async def handle(request: web.Request) -> web.StreamResponse:
    """Ingest a webhook: a Segment message or batch as such, anything else wrapped."""
    try:
        return await _ingest(request)
    except ApiError as exc:
        if exc.status != 503:  # not refused: Redis and the spool were away
            refused.request_refused(request, exc)
        raise


async def _ingest(request: web.Request) -> web.StreamResponse:
    ingest = request.app[INGEST]
    settings = ingest.settings
    body = await read_body(request, settings.max_batch_bytes, "The webhook")
    arrival = handlers.arrival_of(request)
    payload, raw = parse(body, request.headers.get("Content-Type", ""))
    if isinstance(payload, dict) and isinstance(payload.get("batch"), list):
        entries, errors = ingest.batch(raw, arrival)
        if errors:
            request.app[METRICS].tally.refused_items(errors)
            refused.batch(request, raw, arrival, errors)
        await handlers.commit(request, entries)
        return partial(len(entries), errors) if errors else success()
    if len(raw) > settings.max_message_bytes:
        raise too_large(
            f"Message is larger than {settings.max_message_bytes} bytes",
            f"the webhook's payload is {len(raw)} bytes",
        )
    if isinstance(payload, dict) and payload.get("type") in TYPES:
        ingest.check_depth(raw, payload, "$")
        key = arrival.write_key(payload.get("writeKey"))
        entry = ingest.message(payload, payload["type"], arrival, ingest.source(key), "$")
    else:
        body_key = payload.pop("writeKey", None) if isinstance(payload, dict) else None
        source = ingest.source(arrival.write_key(body_key))
        message = wrap(payload, source, raw, request)
        if may_nest_past(raw, settings.max_depth - 2):
            check_depth(message, settings.max_depth, "$")
        entry = ingest.message(message, "track", arrival, source, "$")
    await handlers.commit(request, (entry,))
    return success()


def describe() -> Family:
    """`/v1/webhook` and `/v1/w`, for the OpenAPI document."""
    payload = {
        "description": "A Segment message or batch is ingested as such; any other JSON "
        "object or array, or form, is wrapped as a `track` message.",
        "oneOf": [{"type": "object"}, {"type": "array"}],
    }
    stripe = {"id": "evt_1", "type": "invoice.paid", "data": {"object": {"amount_paid": 4200}}}
    items: PathItems = {}
    for path in PATHS:
        items[path] = {
            "post": operation(
                op_id("post", path),
                "Webhooks",
                "Another platform's payload",
                "Give the platform `https://your-gateway/v1/webhook?writeKey=K`. The writeKey "
                "is looked for as on every route: HTTP Basic, the body's `writeKey`, the URL's.",
                parameters=[CONTENT_ENCODING, WRITE_KEY_QUERY],
                requestBody={
                    "required": True,
                    "content": {
                        JSON: {"schema": payload, **examples(platform=stripe)},
                        FORM: {"schema": {"type": "object"}},
                    },
                },
                responses=BATCH_ANSWERS,
                security=AUTH,
                **alias(path, PATHS[0]),
            )
        }
    return Family(items)


def parse(body: bytes, content_type: str) -> tuple[Payload, bytes]:
    """The payload, and its JSON: a JSON object or array, or a form's fields."""
    stripped = body.lstrip()
    if not stripped:
        raise bad_request("Empty body", "a webhook needs a JSON or form-encoded payload")
    is_form = content_type.split(";")[0].strip().lower() == FORM
    # Some platforms label JSON as a form: a body that opens like JSON is tried as JSON.
    if not is_form or stripped[:1] in (b"{", b"["):
        try:
            value = msgspec.json.decode(body)
        except UNDECODABLE as exc:
            if not is_form or isinstance(exc, RecursionError):
                raise undecodable(body, exc, "$") from None
        else:
            if isinstance(value, dict | list):
                return value, body
            if not is_form:
                raise invalid(
                    "A webhook payload must be a JSON object or array", "or a form-encoded body"
                )
    form = parse_form(body)
    return form, msgspec.json.encode(form)


def parse_form(body: bytes) -> Payload:
    """A form's fields; a repeated field becomes a list. GitHub's form webhooks send the
    JSON in one `payload` field: that JSON is the payload."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request("Invalid UTF-8", f"{exc.reason} at byte {exc.start}") from None
    fields: dict[str, Any] = {}
    for name, value in parse_qsl(text.strip(), keep_blank_values=True):
        if name not in fields:
            fields[name] = value
        elif isinstance(fields[name], list):
            fields[name].append(value)
        else:
            fields[name] = [fields[name], value]
    if list(fields) == ["payload"] and isinstance(fields["payload"], str):
        try:
            inner = msgspec.json.decode(fields["payload"])
        except msgspec.DecodeError:
            return fields
        if isinstance(inner, dict | list):
            return inner
    if not fields:
        raise bad_request("Invalid form body", "no field could be read from it")
    return fields


def wrap(payload: Payload, source: Source, raw: bytes, request: web.Request) -> dict[str, Any]:
    """A third party's payload as a `track` message.

    - `event`: the source's `webhook_event` (default `Webhook Received`);
    - `properties`: the payload; an array goes under `properties.items`;
    - `anonymousId`: `webhook:<source id>`, the same for every webhook of the source, so its
      webhooks keep their order on one partition;
    - `messageId`: derived from the source and the payload, so a platform's retry of the same
      delivery has the same id and consumers can drop the duplicate;
    - `context`: `library.name` `webhook`, the caller's `userAgent`, and its `X-` headers
      (`X-GitHub-Event`, `X-Shopify-Topic`, ...) under `webhook.headers`, bar credentials.
    """
    digest = hashlib.sha256(source.id.encode() + b"\0" + raw).hexdigest()
    context: dict[str, Any] = {"library": dict(LIBRARY)}
    agent = request.headers.get("User-Agent")
    if agent:
        context["userAgent"] = agent
    headers = platform_headers(request)
    if headers:
        context["webhook"] = {"headers": headers}
    return {
        "event": source.webhook_event,
        "anonymousId": f"webhook:{source.id}",
        "messageId": f"webhook-{digest[:32]}",
        "properties": payload if isinstance(payload, dict) else {"items": payload},
        "context": context,
    }


def platform_headers(request: web.Request) -> dict[str, str]:
    """The request's `X-` headers that say what the payload is, lower-cased, without the
    ones that carry credentials or signatures."""
    kept: dict[str, str] = {}
    for name, value in request.headers.items():
        lower = name.lower()
        if lower.startswith("x-") and not any(part in lower for part in _HIDDEN_HEADER_PARTS):
            kept.setdefault(lower, value)
    return kept
