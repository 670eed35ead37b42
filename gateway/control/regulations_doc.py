"""The OpenAPI paths of `/v1/regulations` (`gateway.control.regulations_api`)."""

from __future__ import annotations

from gateway.control.openapi import ERROR, PathItems, operation, ref
from gateway.control.regulation_schemas import CreatedView, ListView, NewRegulation, OneView
from gateway.store.regulation_records import STATUSES

_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_MISSING = ("No such regulation.", ERROR)
_QUERY = [
    {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(STATUSES)}},
    {"name": "pagination.count", "in": "query", "schema": {"type": "integer", "maximum": 100}},
    {"name": "pagination.cursor", "in": "query", "schema": {"type": "string"}},
]


def paths() -> PathItems:
    """The family's paths."""
    listing = operation(
        "list_regulations",
        "Regulations, newest first",
        {200: ("A page of regulations.", ref(ListView)), 400: ("A bad query.", ERROR)},
    )
    listing["parameters"] = _QUERY
    return {
        "/v1/regulations": {
            "get": listing,
            "post": operation(
                "create_regulation",
                "Suppress, delete, stop tracking or access the data of up to 5,000 subjects",
                {
                    200: ("The regulation's id.", ref(CreatedView)),
                    400: ("The body breaks the rules; Details says where.", ERROR),
                    404: ("No such source.", ERROR),
                    409: ("DELETE_ONLY of subjects not suppressed.", ERROR),
                },
                NewRegulation,
                description="SUPPRESS_ONLY, UNSUPPRESS, NO_TRACK and TRACK are in force "
                "in every gateway process within a second; deletes and ACCESS are done by "
                "workers (docs/regulations.md).",
            ),
        },
        "/v1/regulations/{id}": {
            "parameters": [_ID],
            "get": operation(
                "get_regulation",
                "One regulation: its overall status and each store's",
                {200: ("The regulation.", ref(OneView)), 404: _MISSING},
            ),
        },
        "/v1/regulations/{id}/download": {
            "parameters": [_ID],
            "get": operation(
                "download_regulation",
                "An ACCESS regulation's zip: one NDJSON file a store",
                {
                    200: ("The zip (application/zip).", None),
                    404: _MISSING,
                    409: ("Not an ACCESS regulation, or not finished yet.", ERROR),
                    410: ("The files expired (--access-ttl).", ERROR),
                },
            ),
        },
    }
