"""Tracking pixels: a message in a GET's query string, answered with a 1x1 GIF.

`GET /v1/pixel/{type}?data=BASE64` carries the message as base64 JSON; RudderStack's
`GET /pixel/v1/{track,page}` carries it as plain query parameters (`properties.plan=pro`
becomes `{"properties": {"plan": "pro"}}`). Either way the answer is the same GIF, also
when the message is refused (a mail client shows no broken image): a refusal is logged,
counted, and named in the `X-Pixel-Rejected` header for whoever debugs the URL.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from aiohttp import web

from gateway.errors import ApiError, bad_request, invalid, too_large
from gateway.http import handlers, refused
from gateway.http.app_keys import INGEST, METRICS
from gateway.http.handlers import Handler, Routes
from gateway.http.openapi_parts import (
    AUTH,
    WRITE_KEY_QUERY,
    Family,
    Json,
    PathItems,
    op_id,
    operation,
)
from gateway.ingest.validate import TYPES, check_depth, decode_object
from gateway.ops.quiet import Quiet

log = logging.getLogger(__name__)

GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
"""A 1x1 transparent GIF (43 bytes)."""

MAX_REQUEST_LINE = 64 * 1024
"""The longest request line the server reads (aiohttp's default is 8190). It leaves room
for a pixel whose message is at the size limit (32 KB of JSON is 43.7 KB of base64), so
that such a URL gets the gateway's own answer, the GIF, rather than the HTTP parser's 400."""

_URL_SAFE = str.maketrans("-_", "+/")

_Reader = Callable[[web.Request, int], tuple[dict[str, Any], bytes]]
"""`(request, max_bytes) -> (message, its JSON)`: where a pixel route finds its message."""


class Pixels:
    """The pixel routes' handlers, and the count of pixels refused since the start."""

    def __init__(self) -> None:
        self.rejected: Counter[str] = Counter()
        """Refused pixels by status (`400 Bad Request`, `503 Service Unavailable`, ...)."""
        self._quiet = Quiet()

    def routes(self) -> Routes:
        """Path -> method -> handler of every pixel route."""
        table: Routes = {}
        for kind in TYPES:
            handle = self._handler(kind, _from_data)
            table[f"/v1/pixel/{kind}"] = {"GET": handle, "HEAD": handle}
        for kind in ("track", "page"):
            handle = self._handler(kind, _from_params)
            table[f"/pixel/v1/{kind}"] = {"GET": handle, "HEAD": handle}
        return table

    def _handler(self, kind: str, read: _Reader) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            # A HEAD is a proxy or a link scanner checking the URL, not an open: not recorded.
            if request.method == "HEAD":
                return gif()
            try:
                await _ingest(request, kind, read)
            except ApiError as exc:
                return self._refused(request, exc)
            return gif()

        handle.__name__ = f"pixel_{kind}"
        return handle

    def _refused(self, request: web.Request, error: ApiError) -> web.Response:
        reason = f"{error.status} {error.message}"
        # Counted by status alone: a reason may name an address or a size, and a count
        # per distinct text would grow without bound.
        self.rejected[f"{error.status} {error.error}"] += 1
        request.app[METRICS].tally.refused(error)
        refused.request_refused(request, error)
        # The path only: the query string may hold the writeKey. The details may quote
        # a value of the message: only at debug. Anyone can send refused pixels: at most a
        # line every few seconds.
        self._quiet.warning(
            log,
            "pixel_rejected",
            "pixel %s refused: %s (%d pixels refused so far)",
            request.path,
            reason,
            self.rejected.total(),
        )
        if error.details:
            log.debug("pixel %s refused: %s", request.path, error.details)
        return gif(reason)


def gif(rejected: str | None = None) -> web.Response:
    """The pixel's one answer; `rejected` names why the message was refused, if it was."""
    headers = {"Cache-Control": "no-store"}
    if rejected is not None:
        headers["X-Pixel-Rejected"] = rejected
    return web.Response(body=GIF, content_type="image/gif", headers=headers)


async def _ingest(request: web.Request, kind: str, read: _Reader) -> None:
    ingest = request.app[INGEST]
    settings = ingest.settings
    message, raw = read(request, settings.max_message_bytes)
    ingest.check_depth(raw, message, "$")
    arrival = handlers.arrival_of(request)
    # `data` is the message, not a body: its writeKey comes last (docs/decisions.md).
    key = arrival.write_key(pixel_key=message.get("writeKey"))
    entry = ingest.message(message, kind, arrival, ingest.source(key), "$")
    await handlers.commit(request, (entry,))


def _from_data(request: web.Request, limit: int) -> tuple[dict[str, Any], bytes]:
    """The message of `?data=BASE64`."""
    data = request.query.get("data")
    if not data:
        raise bad_request("Missing data", "the pixel needs ?data= with the message as base64 JSON")
    if len(data) > (limit + 2) // 3 * 4 + 4:  # refused before decoding a byte of it
        raise _too_large(limit, f"the data parameter is {len(data)} characters of base64")
    raw = decode_base64(data)
    if len(raw) > limit:
        raise _too_large(limit, f"the message is {len(raw)} bytes")
    return decode_object(raw, "$"), raw


def _from_params(request: web.Request, limit: int) -> tuple[dict[str, Any], bytes]:
    """The message of RudderStack's plain query parameters."""
    if len(request.query_string) > limit:
        raise _too_large(limit, f"the query string is {len(request.query_string)} characters")
    message = nest(request.query.items())
    check_depth(message, request.app[INGEST].settings.max_depth, "$")
    return message, b""


def decode_base64(data: str) -> bytes:
    """Standard or URL-safe base64, padding optional; a 400 otherwise."""
    # A standard-alphabet `+` left unescaped in a URL arrives as a space.
    text = data.strip().replace(" ", "+").translate(_URL_SAFE).rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(
            "Invalid base64", "data must be base64 JSON (standard or URL-safe alphabet)"
        ) from None


def nest(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query parameters as a message: dotted keys become nested objects, values stay strings.

    `writeKey` is left out (it is read apart and never stored); of a repeated key the first
    value counts, as in RudderStack's own pixel.
    """
    message: dict[str, Any] = {}
    for key, value in pairs:
        if key == "writeKey":
            continue
        parts = key.split(".")
        if not all(parts):
            raise bad_request("Invalid query parameter", f"{key!r} has an empty name part")
        node = message
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise _conflict(key, ".".join(parts[: depth + 1]))
            node = child
        leaf = parts[-1]
        if isinstance(node.get(leaf), dict):
            raise _conflict(key, key)
        node.setdefault(leaf, value)
    return message


def _conflict(key: str, prefix: str) -> ApiError:
    return invalid(
        "Conflicting query parameters", f"{key!r}: {prefix!r} is both a value and an object"
    )


def _too_large(limit: int, details: str) -> ApiError:
    return too_large(f"Message is larger than {limit} bytes", details)


def encode_data(message: dict[str, Any]) -> str:
    """A message as the pixel's `data`: URL-safe base64 of its JSON, without padding."""
    return base64.urlsafe_b64encode(msgspec.json.encode(message)).decode().rstrip("=")


def describe() -> Family:
    """`/v1/pixel/{type}?data=` and RudderStack's `/pixel/v1/{track,page}`, for the document."""
    items: PathItems = {}
    for kind in TYPES:
        data = {
            "name": "data",
            "in": "query",
            "required": True,
            "description": "The message as base64 JSON, standard or URL-safe alphabet, padding "
            "optional. Its `writeKey` is used when neither HTTP Basic nor the query has one.",
            "schema": {"type": "string"},
            "examples": {kind: {"value": encode_data(handlers.EXAMPLES[kind])}},
        }
        path = f"/v1/pixel/{kind}"
        items[path] = _described(
            path,
            f"A `{kind}` message in an image URL",
            "For mail clients and anywhere a request can only be an image.",
            [data, WRITE_KEY_QUERY],
        )
    fields = {
        "name": "fields",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": True,
        "description": "Each query parameter is a field of the message; dotted names nest "
        '(`properties.plan=pro` -> `{"properties": {"plan": "pro"}}`); values stay '
        "strings; of a repeated name the first counts.",
        "schema": {"type": "object", "additionalProperties": {"type": "string"}},
        "examples": {
            "track": {"value": {"anonymousId": "a-7", "event": "Opened", "properties.plan": "pro"}}
        },
    }
    for kind in ("track", "page"):
        path = f"/pixel/v1/{kind}"
        items[path] = _described(
            path,
            f"RudderStack's `{kind}` pixel",
            "The message as plain query parameters.",
            [WRITE_KEY_QUERY, fields],
        )
    return Family(items)


_GIF_ANSWER: Json = {
    "200": {
        "description": "Always a 1x1 transparent GIF with `Cache-Control: no-store`, also when "
        "the message is refused (a mail client shows no broken image); then "
        "`X-Pixel-Rejected` says why (`400 Invalid base64`, ...).",
        "headers": {
            "X-Pixel-Rejected": {
                "description": "Why the message was refused; absent when it was stored.",
                "schema": {"type": "string"},
                "examples": {"refused": {"value": "400 Invalid or missing writekey"}},
            },
            "Cache-Control": {"required": True, "schema": {"type": "string", "const": "no-store"}},
        },
        "content": {"image/gif": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _described(path: str, summary: str, description: str, parameters: list[Json]) -> Json:
    get = operation(
        op_id("get", path),
        "Pixels",
        summary,
        description,
        parameters=parameters,
        responses=_GIF_ANSWER,
        security=AUTH,
    )
    head = operation(
        op_id("head", path),
        "Pixels",
        "The pixel's headers; records nothing",
        "HEAD requests come from proxies and link scanners, not from a reader opening a mail.",
        parameters=parameters,
        responses={"200": {"description": "The GIF's headers, no body."}},
    )
    return {"get": get, "head": head}
