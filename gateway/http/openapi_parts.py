"""What each route family describes its paths with, for the OpenAPI document (`openapi`).

A family's module has a `describe()` that returns its `Family`: path items built from the
pieces here (operations, the shared answers, the writeKey's places) and the schemas only it
uses. Nothing here imports a route or a handler, so a family can describe itself beside its
handlers and the document can be assembled without a cycle.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.errors import JSON

Json = dict[str, Any]
PathItems = dict[str, Json]


@dataclasses.dataclass(frozen=True, slots=True)
class Family:
    """A route family's part of the document."""

    paths: PathItems
    schemas: Json = dataclasses.field(default_factory=dict)
    """Component schemas only this family refers to."""


def ref(name: str) -> Json:
    """A reference to the component schema `name`."""
    return {"$ref": f"#/components/schemas/{name}"}


def examples(**named: Any) -> Json:
    """OpenAPI `examples` of a media type: name -> value."""
    return {"examples": {name: {"value": value} for name, value in named.items()}}


def json_answer(
    description: str, schema: Json, headers: Json | None = None, example: Any = None
) -> Json:
    """An answer with a JSON body of `schema`, and an example of that body."""
    media: Json = {"schema": schema}
    if example is not None:
        media |= examples(example=example)
    answer: Json = {"description": description, "content": {JSON: media}}
    if headers:
        answer["headers"] = headers
    return answer


def error_body(status: str, message: str, details: str = "") -> Json:
    """An example of the `Error` shape."""
    return {"Error": status, "Message": message, "Details": details}


def error(description: str, example: Json | None = None) -> Json:
    """An answer in the `Error` shape."""
    return json_answer(description, ref("Error"), example=example)


def operation(operation_id: str, tag: str, summary: str, description: str, **rest: Any) -> Json:
    """An operation object; `rest` adds parameters, requestBody, responses, security."""
    return {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "description": description,
        **rest,
    }


def op_id(method: str, path: str) -> str:
    """`post` + `/v1/track` -> `post_v1_track`: unique per path and method."""
    return method + "".join(c if c.isalnum() else "_" for c in path).rstrip("_")


def alias(path: str, canonical: str) -> Json:
    """`x-alias-of`: the page lists aliases under their canonical path."""
    return {} if path == canonical else {"x-alias-of": canonical}


RETRY_AFTER = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}

SUCCESS: Json = {
    "200": json_answer(
        "Every message of the request is durable (acknowledged by Redis or in the spool).",
        ref("Success"),
        example={"success": True},
    )
}

EVENT_ERRORS: Json = {
    "400": error(
        "Invalid JSON or UTF-8, a message the contract refuses (`Details` names the field's "
        "JSON path), a bad compressed body, or a missing, unknown or disabled writeKey in "
        "sources mode (`Invalid or missing writekey`).",
        error_body("Bad Request", "Invalid message", "Object missing required field `event`"),
    ),
    "413": error(
        "A limit was passed: the message (32 KB by default), the batch (500 KB, 2,500 "
        "items), checked on the decoded bytes while reading.",
        error_body(
            "Request Entity Too Large",
            "The message is larger than 32768 bytes",
            "the limit is 32768 bytes",
        ),
    ),
    "408": error(
        "The body did not arrive within its time limit (30 s, and 1 KB/s on average after "
        "5 s, by default); the connection is closed. Nothing was stored.",
        error_body("Request Timeout", "Request Timeout", "the body did not arrive within 30 s"),
    ),
    "415": error("A `Content-Encoding` other than gzip, deflate or identity."),
    "429": json_answer(
        "The client's address sent more requests than its budget (200 a second by default, "
        "per gateway process); retry after `Retry-After` seconds. Nothing was stored.",
        ref("Error"),
        RETRY_AFTER,
    ),
    "503": json_answer(
        "The messages could not be made durable in time (Redis away and the spool full), "
        "or the gateway's memory for bodies being read is full; nothing of the request was "
        "stored. Retry after `Retry-After` seconds.",
        ref("Error"),
        RETRY_AFTER,
    ),
}

BATCH_ANSWERS: Json = {
    **SUCCESS,
    "207": json_answer(
        "Some items failed, the others are stored: `Accepted` counts them, `Errors` names "
        "each failed item by its `Index`.",
        ref("Partial"),
        example={
            "Success": False,
            "Accepted": 1,
            "Errors": [
                {
                    "Index": 1,
                    **error_body(
                        "Bad Request",
                        "Invalid message",
                        "userId or anonymousId is required - at `$.batch[1]`",
                    ),
                }
            ],
        },
    ),
    **EVENT_ERRORS,
    "400": json_answer(
        "Every item failed (the 207 shape), or the request itself is refused (an error).",
        {"oneOf": [ref("Partial"), ref("Error")]},
        example=error_body("Bad Request", "Invalid JSON", "JSON is malformed"),
    ),
}

CONTENT_ENCODING: Json = {
    "name": "Content-Encoding",
    "in": "header",
    "required": False,
    "description": "`gzip` or `deflate` (zlib-wrapped or raw); limits apply to the decoded "
    "bytes. Any other coding answers 415.",
    "schema": {"type": "string", "enum": ["gzip", "deflate", "identity"]},
}

WRITE_KEY_QUERY: Json = {
    "name": "writeKey",
    "in": "query",
    "required": False,
    "description": "The source's writeKey, when neither HTTP Basic nor the body carries one.",
    "schema": {"type": "string"},
}

AUTH: list[Json] = [{}, {"basicAuth": []}, {"writeKeyQuery": []}]
"""Optional: open mode needs no key, sources mode takes one of these or the body's."""

BODY_NOTE = (
    " The body is JSON whatever the `Content-Type` (`application/json`, `text/plain` as "
    "browsers and `sendBeacon` send, none, or a form type)."
)

_ERROR_FIELDS = {
    "Error": {"type": "string", "description": "The status's reason phrase."},
    "Message": {"type": "string"},
    "Details": {"type": "string", "description": "Where, or why; may be empty."},
}

SHARED_SCHEMAS: Json = {
    "Success": {
        "type": "object",
        "required": ["success"],
        "properties": {"success": {"const": True}},
        "additionalProperties": False,
    },
    "Error": {
        "type": "object",
        "required": list(_ERROR_FIELDS),
        "properties": _ERROR_FIELDS,
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
                    "required": ["Index", *_ERROR_FIELDS],
                    "properties": {"Index": {"type": "integer", "minimum": 0}, **_ERROR_FIELDS},
                    "additionalProperties": False,
                },
            },
        },
        "additionalProperties": False,
    },
}
"""The Segment routes' answer shapes, used by several families."""
