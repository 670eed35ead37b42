"""The OpenAPI paths of `/v1/events/{messageId}` and `/v1/deliveries`
(`gateway.control.events_api`)."""

from __future__ import annotations

from gateway.control.event_schemas import DeliveriesView, EventView, RefusedView
from gateway.control.openapi import ERROR, Json, PathItems, operation, ref

_MESSAGE_ID = {"name": "messageId", "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, text: str, schema: Json) -> Json:
    return {"name": name, "in": "query", "required": False, "description": text, "schema": schema}


def paths() -> PathItems:
    """The family's paths."""
    text: Json = {"type": "string"}
    return {
        "/v1/events/{messageId}": {
            "parameters": [_MESSAGE_ID],
            "get": operation(
                "get_event",
                "Where a message is, and what each consumer group did with it",
                {
                    200: (
                        "The accepted message and each group's status, or why it was refused.",
                        {"oneOf": [ref(EventView), ref(RefusedView)]},
                    ),
                    404: ("Neither accepted within the dedupe window nor refused recently.", ERROR),
                },
                description="An accepted message is found for the dedupe window after it "
                "arrived (--dedupe-window); a refused one while it is among the last 10,000 "
                "refusals (docs/admin.md).",
            ),
        },
        "/v1/deliveries": {
            "get": {
                **operation(
                    "get_deliveries",
                    "Deliveries per minute, group, destination and source",
                    {
                        200: ("The counts, oldest minute first.", ref(DeliveriesView)),
                        400: ("minutes is not from 1 to 120.", ERROR),
                    },
                ),
                "parameters": [
                    _query(
                        "minutes",
                        "how many minutes back, this one included",
                        {"type": "integer", "minimum": 1, "maximum": 120, "default": 60},
                    ),
                    _query("source", "only this source", text),
                    _query("destination", "only this destination", text),
                    _query("group", "only this consumer group", text),
                ],
            },
        },
    }
