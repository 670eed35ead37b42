"""The OpenAPI paths of the live inspector (`gateway.control.inspector_api`,
`gateway.control.inspector_actions`)."""

from __future__ import annotations

from gateway.control.inspector_rows import FILTERS
from gateway.control.openapi import ERROR, Json, PathItems, operation


def _query(name: str, text: str) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": text,
        "schema": {"type": "string"},
    }


def paths() -> PathItems:
    """The family's paths."""
    text: Json = {"type": "string"}
    anything: Json = {"type": "object"}
    feed = operation(
        "inspector_feed",
        "The live inspector's feed (Server-Sent Events)",
        {
            200: (
                "`row` events (a message and its outcome), `stats` each second (what was "
                "shown of what matched, rates), `rates` and `ready` once.",
                None,
            )
        },
        description="The matching messages of the last `minutes` (5 unless told), then each "
        "new one; at most 50 rows a second (sampled beyond). docs/inspector.md.",
    )
    feed["parameters"] = [
        *(_query(name, f"Only rows whose {name} is this.") for name in FILTERS),
        _query("minutes", "Minutes shown from before the page opened (0 to 60)."),
    ]
    feed["responses"]["200"]["content"] = {"text/event-stream": {"schema": text}}
    home = operation("home", "The live inspector (a page, for a browser)", {200: ("HTML.", None)})
    home["responses"]["200"]["content"] = {"text/html": {"schema": text}}
    return {
        "/": {"get": home},
        "/v1/inspector/feed": {"get": feed},
        "/v1/inspector/groups": {
            "get": operation(
                "inspector_groups",
                "Consumer groups: consumers, pending, lag, dead letters",
                {200: ("The groups, summed over the partitions.", anything)},
            )
        },
        "/v1/inspector/groups/{group}/redrive": {
            "parameters": [{"name": "group", "in": "path", "required": True, "schema": text}],
            "post": operation(
                "inspector_redrive",
                "Ask a worker of the group to re-drive its dead letters",
                {
                    202: ("Asked: a running worker of the group takes it.", anything),
                    404: ("The group has no dead letters.", ERROR),
                },
            ),
        },
        "/v1/inspector/test-event": {
            "post": operation(
                "inspector_test_event",
                "Store a test `track` message for a source",
                {
                    201: ("Stored (or dropped by the source's policies).", anything),
                    400: ("A bad body, or the source is disabled.", ERROR),
                    404: ("No such source.", ERROR),
                },
                description='The body: `{"source": "web"}`.',
            )
        },
    }
