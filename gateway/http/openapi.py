"""The OpenAPI 3.1 document of every public route, served at `GET /openapi.json`.

Written by hand, each route family beside its handlers: a family's module has a
`describe()` that returns its path items and schemas (`openapi_parts.Family`), saying what
the docs say (answers, aliases, the writeKey's places, an example of each body); the message
schemas come from `gateway.ingest.validate`'s msgspec structs, so they cannot drift from what
is checked. This module only assembles them. `tests/test_openapi.py` fails when a route of
`routes.table()` is missing here, a documented one is not routed, or an example does not
match its schema.

To document a new route family: give its module a `describe()` and add it to `FAMILIES`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import msgspec

from gateway import __version__
from gateway.http import (
    commanders_act,
    handlers,
    health,
    intilery,
    pixel,
    sdk_docs,
    webhook,
)
from gateway.http.openapi_parts import (
    SHARED_SCHEMAS,
    Family,
    Json,
    PathItems,
    json_answer,
    op_id,
    operation,
)

OPENAPI_VERSION = "3.1.0"


def _doc_routes() -> Family:
    """This document and its page (`gateway.http.apidocs`, which serves this module's output)."""
    return Family(
        {
            "/openapi.json": {
                "get": operation(
                    "get_openapi_json",
                    "Documentation",
                    "This OpenAPI document",
                    "",
                    responses={"200": json_answer("The document.", {"type": "object"})},
                )
            },
            "/docs": {
                "get": operation(
                    "get_docs",
                    "Documentation",
                    "This document as a readable page",
                    "A self-contained HTML page (no script, no external resource).",
                    responses={
                        "200": {
                            "description": "The page.",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        }
                    },
                )
            },
        }
    )


def _with_preflight(items: PathItems) -> PathItems:
    """An `OPTIONS` preflight on every path, as `gateway.http.cors.with_preflight` routes it."""
    for path, item in items.items():
        # A templated path's preflight takes the same path parameters as its operations.
        first: Json = next(iter(item.values()), {})
        path_parameters = [p for p in first.get("parameters", ()) if p.get("in") == "path"]
        item["options"] = {
            "operationId": op_id("options", path),
            "tags": ["CORS"],
            "summary": "CORS preflight",
            "description": "Allows POST, GET, OPTIONS and echoes `Access-Control-Request-"
            "Headers` (a `*` would not cover `Authorization`).",
            "responses": {
                "204": {
                    "description": "Allowed, from any origin.",
                    "headers": {
                        "Access-Control-Allow-Methods": {
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        "Access-Control-Max-Age": {
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    },
                }
            },
        }
        if path_parameters:
            item["options"]["parameters"] = path_parameters
    return items


FAMILIES: tuple[Callable[[], Family], ...] = (
    handlers.describe,
    pixel.describe,
    webhook.describe,
    commanders_act.describe,
    intilery.describe,
    sdk_docs.describe,
    health.describe,
    _doc_routes,
)
"""Every route family's part, in the order the document lists them."""


_DESCRIPTION = """\
A Segment-compatible HTTP tracking API: every accepted message becomes an entry of a Redis \
stream, durable before the gateway answers `200 {"success": true}`.

- **writeKey**, looked for in this order: the HTTP Basic username (`base64("KEY:")`), the \
body's `writeKey`, the `writeKey` query parameter. With no sources file the gateway is open \
and needs none. A missing, unknown or disabled key answers 400 `Invalid or missing writekey` \
(never 401 or 403, as Segment's SDKs expect).
- **Bodies** are JSON whatever the `Content-Type`; `Content-Encoding: gzip` and `deflate` \
are decoded.
- **Paths** are matched tolerantly and never redirected (`/v1/track/`, `//v1//track`). An \
unknown path answers a JSON 404, a known path with another method a JSON 405 with `Allow`.
- **CORS**: every answer carries `Access-Control-Allow-Origin` (the request's `Origin`, \
else `*`) and exposes `Retry-After`.
- Limits (32 KB a message, 500 KB and 2,500 items a batch, nesting 64) are the defaults; \
see docs/configuration.md.
- **Every route** may answer 429 `Too many requests from this address` (the contract's error \
body, with `Retry-After`) when one client address goes past its budget of requests a second \
(`--address-rate`, `--address-burst`; see docs/security.md); the operations below list only \
their own answers.
"""


@functools.cache
def document() -> Json:
    """The OpenAPI document (built once; treat it as read-only)."""
    paths: PathItems = {}
    schemas: Json = dict(SHARED_SCHEMAS)
    for describe in FAMILIES:
        family = describe()
        paths.update(family.paths)
        schemas.update(family.schemas)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "event-gateway HTTP tracking API",
            "version": __version__,
            "description": _DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [{"name": name} for name in _tags(paths.values())],
        "paths": _with_preflight(paths),
        "components": {
            "schemas": schemas,
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait before trying again.",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                }
            },
            "securitySchemes": {
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "The writeKey as the username; the password is empty.",
                },
                "writeKeyQuery": {"type": "apiKey", "in": "query", "name": "writeKey"},
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A Commanders Act v1 source key.",
                },
                "intileryToken": {"type": "apiKey", "in": "header", "name": "auth-token"},
            },
        },
    }


def _tags(items: Iterable[Json]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        for described in item.values():
            for tag in described.get("tags", ()):
                seen.setdefault(tag, None)
    return [*seen, "CORS"]


@functools.cache
def encoded() -> bytes:
    """The document as JSON bytes, as `GET /openapi.json` serves it."""
    return msgspec.json.encode(document())
