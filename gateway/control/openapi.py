"""`GET /openapi.json` of the admin listener: its own document, apart from the public one.

Each family of admin routes describes its paths with `operation`; the schemas come from
the msgspec structs of `gateway.control.schemas`, as the public document's do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from aiohttp import web

from gateway import __version__
from gateway.control import event_schemas, regulation_schemas, schemas
from gateway.errors import JSON
from gateway.ingest.tracking_plan import PlanSettings

Json = dict[str, Any]
PathItems = dict[str, Json]
REF = "#/components/schemas/{name}"
ERROR: Json = {"$ref": REF.format(name="Error")}
_STRUCTS = (
    schemas.NewSource,
    schemas.SourceChange,
    schemas.NewKey,
    schemas.Rotation,
    schemas.SourcesView,
    schemas.SourceView,
    schemas.NewKeyView,
    *regulation_schemas.STRUCTS,
    *event_schemas.STRUCTS,
    schemas.PlanView,
    PlanSettings,
)
_ERROR_SCHEMA: Json = {
    "type": "object",
    "properties": {k: {"type": "string"} for k in ("Error", "Message", "Details")},
}


def ref(struct: type[msgspec.Struct]) -> Json:
    """A reference to the schema of `struct`."""
    return {"$ref": REF.format(name=struct.__name__)}


def operation(
    op_id: str,
    summary: str,
    answers: dict[int, tuple[str, Json | None]],
    body: type[msgspec.Struct] | None = None,
    description: str = "",
) -> Json:
    """One operation: its answers by status (description, JSON schema or None)."""
    responses: Json = {
        str(status): {"description": text}
        | ({"content": {JSON: {"schema": schema}}} if schema is not None else {})
        for status, (text, schema) in answers.items()
    }
    responses["401"] = {
        "description": "No admin token, or a wrong one.",
        "content": {JSON: {"schema": ERROR}},
    }
    found: Json = {"operationId": op_id, "summary": summary, "responses": responses}
    if description:
        found["description"] = description
    if body is not None:
        found["requestBody"] = {"required": True, "content": {JSON: {"schema": ref(body)}}}
    return found


def document(families: Iterable[Callable[[], PathItems]]) -> Json:
    """The admin API's OpenAPI document, from each family's paths."""
    _, components = msgspec.json.schema_components(_STRUCTS, ref_template=REF)
    paths: PathItems = {}
    for family in families:
        paths.update(family())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Gateway admin API",
            "version": __version__,
            "description": "The admin listener (--admin-host, --admin-port): sources and "
            "keys at run time, regulations, and /metrics. Every call needs the admin token "
            "(docs/admin.md).",
        },
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {**components, "Error": _ERROR_SCHEMA},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "gateway_admin"},
            },
        },
    }


def handler(families: Iterable[Callable[[], PathItems]]) -> Callable[..., Any]:
    """`GET /openapi.json`, the document made once."""

    @functools.cache
    def body() -> bytes:
        return msgspec.json.encode(document(families))

    async def openapi_json(request: web.Request) -> web.Response:
        return web.Response(body=body(), content_type=JSON)

    return openapi_json
