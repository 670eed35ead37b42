"""The OpenAPI 3.1 document of every public route, served at `GET /openapi.json`.

Written by hand, route family by route family, so that it says what the docs say (answers,
aliases, the writeKey's places); the message schemas come from `gateway.ingest.validate`'s msgspec
structs, so they cannot drift from what is checked. `tests/test_openapi.py` fails when a
route of `routes.table()` is missing here, or a documented one is not routed.

To document a new route: write a function that returns its path items (see `_event_routes`
or `_health_routes`) and add it to `PATH_GROUPS`; new answer shapes go to `_schemas`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from gateway import __version__
from gateway.http import webhook
from gateway.ingest.validate import SCHEMAS, TYPES

Json = dict[str, Any]
PathItems = dict[str, Json]

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"
TIMESTAMPS = ("timestamp", "originalTimestamp", "sentAt")


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_answer(description: str, schema: Json, headers: Json | None = None) -> Json:
    answer: Json = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def _error(description: str) -> Json:
    return _json_answer(description, _ref("Error"))


_RETRY_AFTER = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}

_EVENT_ERRORS: Json = {
    "400": _error(
        "Invalid JSON or UTF-8, a message the contract refuses (`Details` names the field's "
        "JSON path), a bad compressed body, or a missing, unknown or disabled writeKey in "
        "sources mode (`Invalid or missing writekey`)."
    ),
    "413": _error(
        "A limit was passed: the message (32 KB by default), the batch (500 KB, 2,500 "
        "items), checked on the decoded bytes while reading."
    ),
    "415": _error("A `Content-Encoding` other than gzip, deflate or identity."),
    "503": _json_answer(
        "The messages could not be made durable in time (Redis away and the spool full); "
        "nothing of the request was stored. Retry after `Retry-After` seconds.",
        _ref("Error"),
        _RETRY_AFTER,
    ),
}

_SUCCESS: Json = {
    "200": _json_answer(
        "Every message of the request is durable (acknowledged by Redis or in the spool).",
        _ref("Success"),
    )
}

_BATCH_ANSWERS: Json = {
    **_SUCCESS,
    "207": _json_answer(
        "Some items failed, the others are stored: `Accepted` counts them, `Errors` names "
        "each failed item by its `Index`.",
        _ref("Partial"),
    ),
    **_EVENT_ERRORS,
    "400": _json_answer(
        "Every item failed (the 207 shape), or the request itself is refused (an error).",
        {"oneOf": [_ref("Partial"), _ref("Error")]},
    ),
}

_CONTENT_ENCODING: Json = {
    "name": "Content-Encoding",
    "in": "header",
    "required": False,
    "description": "`gzip` or `deflate` (zlib-wrapped or raw); limits apply to the decoded "
    "bytes. Any other coding answers 415.",
    "schema": {"type": "string", "enum": ["gzip", "deflate", "identity"]},
}

_WRITE_KEY_QUERY: Json = {
    "name": "writeKey",
    "in": "query",
    "required": False,
    "description": "The source's writeKey, when neither HTTP Basic nor the body carries one.",
    "schema": {"type": "string"},
}

_AUTH: list[Json] = [{}, {"basicAuth": []}, {"writeKeyQuery": []}]
"""Optional: open mode needs no key, sources mode takes one of these or the body's."""

_BODY_NOTE = (
    " The body is JSON whatever the `Content-Type` (`application/json`, `text/plain` as "
    "browsers and `sendBeacon` send, none, or a form type)."
)


def _operation(operation_id: str, tag: str, summary: str, description: str, **rest: Any) -> Json:
    return {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "description": description,
        **rest,
    }


def _op_id(method: str, path: str) -> str:
    """`post` + `/v1/track` -> `post_v1_track`: unique per path and method."""
    return method + "".join(c if c.isalnum() else "_" for c in path).rstrip("_")


def _alias(path: str, canonical: str) -> Json:
    """`x-alias-of`: the page lists aliases under their canonical path."""
    return {} if path == canonical else {"x-alias-of": canonical}


# -- route families -------------------------------------------------------------------------


def _event_routes() -> PathItems:
    """The single-message, batch and beacon routes (`gateway.http.routes`)."""
    # Imported here: gateway.http.routes imports this module (through apidocs) for its own routes.
    from gateway.http import routes

    items: PathItems = {}
    for kind, paths in routes.SINGLE_PATHS.items():
        for path in paths:
            items[path] = {
                "post": _operation(
                    _op_id("post", path),
                    "Events",
                    f"One `{kind}` message",
                    f"The route sets `type` to `{kind}`, whatever the body says." + _BODY_NOTE,
                    parameters=[_CONTENT_ENCODING, _WRITE_KEY_QUERY],
                    requestBody={
                        "required": True,
                        "content": {JSON: {"schema": _ref(SCHEMAS[kind].__name__)}},
                    },
                    responses={**_SUCCESS, **_EVENT_ERRORS},
                    security=_AUTH,
                    **_alias(path, paths[0]),
                )
            }
    for path in routes.BATCH_PATHS + routes.BEACON_PATHS:
        beacon = path in routes.BEACON_PATHS
        what = (
            "RudderStack's `sendBeacon` batch (`?writeKey=`)."
            if beacon
            else "Many messages; each is accepted or refused alone."
        )
        items[path] = {
            "post": _operation(
                _op_id("post", path),
                "Events",
                "A batch of messages",
                what + " A key at the request level (Basic, the envelope's `writeKey`, the query) "
                "applies to every item; only without one is each item's own `writeKey` used."
                + _BODY_NOTE,
                parameters=[_CONTENT_ENCODING, _WRITE_KEY_QUERY],
                requestBody={"required": True, "content": {JSON: {"schema": _ref("Batch")}}},
                responses=_BATCH_ANSWERS,
                security=_AUTH,
                **_alias(path, path if beacon else routes.BATCH_PATHS[0]),
            )
        }
    return items


_GIF_ANSWER: Json = {
    "200": {
        "description": "Always a 1x1 transparent GIF with `Cache-Control: no-store`, also when "
        "the message is refused (a mail client shows no broken image); then "
        "`X-Pixel-Rejected` says why (`400 Invalid base64`, ...).",
        "headers": {
            "X-Pixel-Rejected": {
                "description": "Why the message was refused; absent when it was stored.",
                "schema": {"type": "string"},
            },
            "Cache-Control": {"required": True, "schema": {"type": "string", "const": "no-store"}},
        },
        "content": {"image/gif": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _pixel(path: str, summary: str, description: str, parameters: list[Json]) -> Json:
    get = _operation(
        _op_id("get", path),
        "Pixels",
        summary,
        description,
        parameters=parameters,
        responses=_GIF_ANSWER,
        security=_AUTH,
    )
    head = _operation(
        _op_id("head", path),
        "Pixels",
        "The pixel's headers; records nothing",
        "HEAD requests come from proxies and link scanners, not from a reader opening a mail.",
        parameters=parameters,
        responses={"200": {"description": "The GIF's headers, no body."}},
    )
    return {"get": get, "head": head}


def _pixel_routes() -> PathItems:
    """`/v1/pixel/{type}?data=` and RudderStack's `/pixel/v1/{track,page}` (`http.pixel`)."""
    items: PathItems = {}
    data = {
        "name": "data",
        "in": "query",
        "required": True,
        "description": "The message as base64 JSON, standard or URL-safe alphabet, padding "
        "optional. Its `writeKey` field is used when the query has none.",
        "schema": {"type": "string"},
    }
    for kind in TYPES:
        path = f"/v1/pixel/{kind}"
        items[path] = _pixel(
            path,
            f"A `{kind}` message in an image URL",
            "For mail clients and anywhere a request can only be an image.",
            [data, _WRITE_KEY_QUERY],
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
    }
    for kind in ("track", "page"):
        path = f"/pixel/v1/{kind}"
        items[path] = _pixel(
            path,
            f"RudderStack's `{kind}` pixel",
            "The message as plain query parameters.",
            [_WRITE_KEY_QUERY, fields],
        )
    return items


def _webhook_routes() -> PathItems:
    """`/v1/webhook` and `/v1/w` (`gateway.http.webhook`)."""
    payload = {
        "description": "A Segment message or batch is ingested as such; any other JSON "
        "object or array, or form, is wrapped as a `track` message.",
        "oneOf": [{"type": "object"}, {"type": "array"}],
    }
    items: PathItems = {}
    for path in webhook.PATHS:
        items[path] = {
            "post": _operation(
                _op_id("post", path),
                "Webhooks",
                "Another platform's payload",
                "Give the platform `https://your-gateway/v1/webhook?writeKey=K`. The URL's "
                "writeKey wins over the body's; HTTP Basic over both.",
                parameters=[_CONTENT_ENCODING, _WRITE_KEY_QUERY],
                requestBody={
                    "required": True,
                    "content": {
                        JSON: {"schema": payload},
                        webhook.FORM: {"schema": {"type": "object"}},
                    },
                },
                responses=_BATCH_ANSWERS,
                security=_AUTH,
                **_alias(path, webhook.PATHS[0]),
            )
        }
    return items


def _commanders_act_routes() -> PathItems:
    """`/events` and `/events/batch` (`gateway.http.commanders_act`)."""
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
        _CONTENT_ENCODING,
    ]
    answers = {
        "200": {
            **_json_answer(
                "Taken: every event is stored, or (refused key, unmappable event) recorded in "
                "the `gateway:rejected` stream with the reason.",
                _ref("Success"),
            ),
            "headers": {
                "Deprecation": {
                    "description": "On a v1 request: v1 is deprecated (RFC 9745).",
                    "schema": {"type": "string"},
                }
            },
        },
        "400": _error(
            "Invalid JSON or UTF-8, an unsupported `Content-Encoding`, or too large "
            "(32 KB per event, 500 KB per batch): nothing stored."
        ),
        "503": _EVENT_ERRORS["503"],
    }
    described = (
        ("/events", "One Commanders Act event (v2, or v1 with a Bearer key)", {"type": "object"}),
        (
            "/events/batch",
            "A batch of Commanders Act v2 events",
            {"type": "object", "required": ["batch"], "properties": {"batch": {"type": "array"}}},
        ),
    )
    items: PathItems = {}
    for path, summary, schema in described:
        items[path] = {
            "post": _operation(
                _op_id("post", path),
                "Commanders Act",
                summary,
                "Mapped to a Segment `track` message; see docs/commanders-act.md. Answers as "
                "Commanders Act's documents say: 200 for everything parseable, 400 otherwise.",
                parameters=query,
                requestBody={"required": True, "content": {JSON: {"schema": schema}}},
                responses=answers,
                security=[{}, {"bearerAuth": []}],
            )
        }
    return items


def _intilery_routes() -> PathItems:
    """Intilery's `/track/{clientId}/{accountId}/{brandId}/v1/{action}` (docs/intilery.md)."""
    from gateway.http import intilery

    def error(description: str, headers: Json | None = None) -> Json:
        return _json_answer(description, _ref("IntileryError"), headers)

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
            "schema": {"type": "string", "enum": list(intilery.ACTIONS)},
        },
        {**_CONTENT_ENCODING},
    ]
    path = intilery.PATH + "{action}"
    return {
        path: {
            "post": _operation(
                _op_id("post", path),
                "Intilery",
                "A message or batch in Intilery's dialect",
                "The action sets the type; the body's `event` repeats it (`identify`, `page`) "
                "or names the tracked event. In a batch each item's `event` names its method "
                "(`identify`, `page`, `screen`, `group`), any other value being a track of "
                "that name; the batch's `context` is merged into each item. A batch is stored "
                "whole or not at all." + _BODY_NOTE,
                parameters=parameters,
                requestBody={
                    "required": True,
                    "content": {JSON: {"schema": {"type": "object"}}},
                },
                responses={
                    "200": _json_answer(
                        "Stored: `eventId` is the messageId (a batch's first; `eventIds` "
                        "lists each item's).",
                        _ref("IntileryAnswer"),
                    ),
                    "400": error("Invalid JSON or message, or a batch with a bad item."),
                    "403": error(
                        "`No Token Supplied`, or `Token Not Authorised` for this account or brand."
                    ),
                    "404": error("An action other than the five."),
                    "413": error("The request is past 1 MB, or a message past 32 KB."),
                    "429": error(
                        "The token is past its rate limit (100/s, bursts to 500).", _RETRY_AFTER
                    ),
                    "503": error("The messages could not be made durable in time.", _RETRY_AFTER),
                },
                security=[{"intileryToken": []}],
            )
        }
    }


def _health_routes() -> PathItems:
    """`/health` and `/ready` (`gateway.http.health`)."""
    live = {"200": _json_answer("The process serves requests.", _ref("Health"))}
    ready = {
        "200": _json_answer("A message sent now would be made durable.", _ref("Ready")),
        "503": _json_answer(
            "The spool is full and Redis is away or the spool is replaying.",
            _ref("Ready"),
            _RETRY_AFTER,
        ),
    }
    items: PathItems = {}
    for path, summary, answers in (
        ("/health", "Liveness: the process is alive and serving", live),
        ("/ready", "Readiness: a message sent now would get a 200", ready),
    ):
        items[path] = {
            method: _operation(_op_id(method, path), "Health", summary, "", responses=answers)
            for method in ("get", "head")
        }
    return items


def _metrics_routes() -> PathItems:
    """`/metrics` (`gateway.http.scrape`)."""
    text = {"schema": {"type": "string"}}
    return {
        "/metrics": {
            "get": _operation(
                "get_metrics",
                "Operations",
                "Prometheus metrics",
                "The counts of every process of this gateway, and the spool, stream lengths "
                "and consumer-group lag read at scrape time (docs/metrics.md). OpenMetrics "
                "when the `Accept` header asks for it.",
                responses={
                    "200": {
                        "description": "The metrics.",
                        "content": {"text/plain": text, "application/openmetrics-text": text},
                    }
                },
            )
        }
    }


def _doc_routes() -> PathItems:
    """This document and its page (`gateway.http.apidocs`)."""
    return {
        "/openapi.json": {
            "get": _operation(
                "get_openapi_json",
                "Documentation",
                "This OpenAPI document",
                "",
                responses={"200": _json_answer("The document.", {"type": "object"})},
            )
        },
        "/docs": {
            "get": _operation(
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


def _sdk_routes() -> PathItems:
    """What SDKs fetch before they send, and analytics.js's metrics (`gateway.http.sdk_*`)."""
    from gateway.http import analytics_js, rudderstack_config, sdk_metrics, sdk_settings

    def path_parameter(name: str, description: str) -> Json:
        schema = {"type": "string"}
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": description,
            "schema": schema,
        }

    write_key = [path_parameter("writeKey", "The source's writeKey.")]
    unknown = _error("Sources mode: no enabled source has this writeKey.")
    cached = {"description": "Unchanged since the `ETag` in `If-None-Match`."}
    items: PathItems = {}
    for path in sdk_settings.PATHS:
        items[path] = {
            "get": _operation(
                _op_id("get", path),
                "SDK settings",
                "analytics.js's settings: send everything here",
                "`integrations` holds `Segment.io` alone, with `apiHost` this gateway's public "
                "host (`--public-url`, else the request's) and `/v1`; `metrics.sampleRate` 0; "
                "the source's `plan` and `consentSettings`. Cacheable for 60 s, with an ETag.",
                parameters=write_key,
                responses={
                    "200": _json_answer("The settings.", {"type": "object"}),
                    "304": cached,
                    "404": unknown,
                },
                **_alias(path, sdk_settings.PATHS[0]),
            )
        }
    items[rudderstack_config.PATH] = {
        "get": _operation(
            "get_sourceConfig",
            "SDK settings",
            "RudderStack's source configuration",
            "What RudderStack's browser SDKs fetch from `configUrl`: the source, enabled, with "
            "no destinations and no error or metrics reporting.",
            parameters=[{**_WRITE_KEY_QUERY, "required": False}],
            responses={
                "200": _json_answer("The configuration.", {"type": "object"}),
                "304": cached,
                "404": unknown,
            },
            security=_AUTH,
        )
    }
    files = {
        analytics_js.SCRIPT_PATH: ("analytics.js (`standalone.js` of the build)", write_key),
        analytics_js.BUNDLES_PATH: (
            "A chunk of analytics.js",
            [path_parameter("name", "The chunk's file name.")],
        ),
    }
    for path, (summary, parameters) in files.items():
        answers = {
            "200": {
                "description": "The file, gzip-encoded when accepted (the build's `.gz`).",
                "content": {"text/javascript": {"schema": {"type": "string"}}},
            },
            "304": cached,
            "404": _error(
                "No build configured (`--analytics-js`), no such file, or (the script) an "
                "unknown writeKey in sources mode."
            ),
        }
        items[path] = {
            method: _operation(
                _op_id(method, path),
                "analytics.js",
                summary,
                "From the folder `--analytics-js` names, with caching headers.",
                parameters=parameters,
                responses=answers,
            )
            for method in ("get", "head")
        }
    items[sdk_metrics.PATH] = {
        "post": _operation(
            "post_v1_m",
            "analytics.js",
            "analytics.js's usage metrics",
            '`{"series": [...]}`: each series is counted in `gateway_sdk_metrics_total`; '
            "nothing is stored.",
            requestBody={"required": True, "content": {JSON: {"schema": {"type": "object"}}}},
            responses={
                "200": _json_answer("Counted.", _ref("Success")),
                "400": _error("Invalid JSON."),
            },
        )
    }
    return items


def _with_preflight(items: PathItems) -> PathItems:
    """An `OPTIONS` preflight on every path, as `gateway.http.cors.with_preflight` routes it."""
    for path, item in items.items():
        # A templated path's preflight takes the same path parameters as its operations.
        first: Json = next(iter(item.values()), {})
        path_parameters = [p for p in first.get("parameters", ()) if p.get("in") == "path"]
        item["options"] = {
            "operationId": _op_id("options", path),
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


PATH_GROUPS: tuple[Callable[[], PathItems], ...] = (
    _event_routes,
    _pixel_routes,
    _webhook_routes,
    _commanders_act_routes,
    _intilery_routes,
    _sdk_routes,
    _health_routes,
    _metrics_routes,
    _doc_routes,
)
"""Every route family's path items, in the order the document lists them."""


# -- schemas --------------------------------------------------------------------------------


def _message_schemas() -> Json:
    """The six message types, from the msgspec structs that validate them."""
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
        for field in TIMESTAMPS:
            for option in schema["properties"][field]["anyOf"]:
                if option["type"] == "string":
                    option["format"] = "date-time"
    return dict(components)


def _schemas() -> Json:
    error_fields = {
        "Error": {"type": "string", "description": "The status's reason phrase."},
        "Message": {"type": "string"},
        "Details": {"type": "string", "description": "Where, or why; may be empty."},
    }
    return {
        **_message_schemas(),
        "Batch": {
            "type": "object",
            "required": ["batch"],
            "properties": {
                "batch": {
                    "type": "array",
                    "items": _ref("BatchItem"),
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
        "Success": {
            "type": "object",
            "required": ["success"],
            "properties": {"success": {"const": True}},
            "additionalProperties": False,
        },
        "Error": {
            "type": "object",
            "required": list(error_fields),
            "properties": error_fields,
            "additionalProperties": False,
        },
        "Partial": {
            "type": "object",
            "required": ["Success", "Accepted", "Errors"],
            "properties": {
                "Success": {"const": False},
                "Accepted": {"type": "integer", "minimum": 0},
                "Errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["Index", *error_fields],
                        "properties": {
                            "Index": {"type": "integer", "minimum": 0},
                            **error_fields,
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
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
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "Ready": {
            "type": "object",
            "required": ["status", "redis", "spool"],
            "properties": {
                "status": {"enum": ["ready", "unavailable"]},
                "redis": {"enum": ["up", "down"]},
                "spool": {
                    "type": "object",
                    "required": ["bytes", "max_bytes", "replaying"],
                    "properties": {
                        "bytes": {"type": "integer", "minimum": 0},
                        "max_bytes": {"type": "integer", "minimum": 1},
                        "replaying": {"type": "boolean"},
                    },
                },
            },
        },
    }


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
"""


@functools.cache
def document() -> Json:
    """The OpenAPI document (built once; treat it as read-only)."""
    paths: PathItems = {}
    for group in PATH_GROUPS:
        paths.update(group())
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
            "schemas": _schemas(),
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
        for operation in item.values():
            for tag in operation.get("tags", ()):
                seen.setdefault(tag, None)
    return [*seen, "CORS"]


@functools.cache
def encoded() -> bytes:
    """The document as JSON bytes, as `GET /openapi.json` serves it."""
    return msgspec.json.encode(document())
