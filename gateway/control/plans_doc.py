"""The OpenAPI paths of `/v1/sources/{id}/tracking-plan` (`gateway.control.plans_api`)."""

from __future__ import annotations

from gateway.control.openapi import ERROR, PathItems, operation, ref
from gateway.control.schemas import PlanView
from gateway.errors import JSON
from gateway.ingest.tracking_plan import PlanSettings

_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_MISSING = ("No such source, or it has no tracking plan.", ERROR)
_VIOLATION = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "JSON path in the message"},
        "message": {"type": "string"},
        "kind": {"type": "string", "description": "the JSON Schema keyword, or unplanned_*"},
        "omitted": {"type": "boolean"},
    },
}
_FINDINGS = {
    "type": "object",
    "properties": {
        "violations": {"type": "integer", "description": "how many, in all"},
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "event": {"type": "string"},
                    "outcome": {"type": "string", "enum": ["stored", "blocked", "refused"]},
                    "violations": {"type": "array", "items": _VIOLATION},
                },
            },
        },
    },
}


def paths() -> PathItems:
    """The family's paths."""
    validate = operation(
        "validate_messages",
        "Dry run: the violations the plan in force would raise; nothing is stored",
        {200: ("Each message's outcome and violations.", _FINDINGS), 404: _MISSING},
        description='The body: a JSON array of messages, `{"batch": [...]}`, or one '
        "message. Each goes through the gateway's validation and enrichment, then the "
        "plan, as enforcement does (docs/tracking-plans.md).",
    )
    validate["requestBody"] = {"required": True, "content": {JSON: {"schema": {}}}}
    return {
        "/v1/sources/{id}/tracking-plan": {
            "parameters": [_ID],
            "get": operation(
                "get_tracking_plan",
                "The source's tracking plan and modes",
                {200: ("The plan.", ref(PlanView)), 404: _MISSING},
            ),
            "put": operation(
                "put_tracking_plan",
                "Set an API source's tracking plan (Segment's JSON) and its modes",
                {
                    200: ("The plan, in force on every process within a second.", ref(PlanView)),
                    400: ("The plan does not compile: the error and its JSON path.", ERROR),
                    404: _MISSING,
                    409: ("The source is the sources file's.", ERROR),
                },
                PlanSettings,
            ),
            "delete": operation(
                "delete_tracking_plan",
                "Stop checking the source's messages",
                {204: ("Removed.", None), 404: _MISSING, 409: ("The sources file's.", ERROR)},
            ),
        },
        "/v1/sources/{id}/tracking-plan/validate": {"parameters": [_ID], "post": validate},
    }
