"""The OpenAPI paths of `/v1/sources` (`gateway.control.sources_api`)."""

from __future__ import annotations

from gateway.control.openapi import ERROR, PathItems, operation, ref
from gateway.control.schemas import (
    NewKey,
    NewKeyView,
    NewSource,
    Rotation,
    SourceChange,
    SourcesView,
    SourceView,
)

_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_KEY_ID = {"name": "keyId", "in": "path", "required": True, "schema": {"type": "string"}}
_MISSING = ("No such source (or key).", ERROR)
_READ_ONLY = ("The source is the sources file's, or the id is taken.", ERROR)
_INVALID = ("The body breaks the rules; Details says where.", ERROR)


def paths() -> PathItems:
    """The family's paths."""
    return {
        "/v1/sources": {
            "get": operation(
                "list_sources",
                "Every source and its keys (masked), and the mode in force",
                {200: ("The sources.", ref(SourcesView))},
            ),
            "post": operation(
                "create_source",
                "Create a source; the first one switches every process to sources mode",
                {201: ("The source.", ref(SourceView)), 400: _INVALID, 409: _READ_ONLY},
                NewSource,
            ),
        },
        "/v1/sources/{id}": {
            "parameters": [_ID],
            "get": operation(
                "get_source", "One source", {200: ("The source.", ref(SourceView)), 404: _MISSING}
            ),
            "patch": operation(
                "change_source",
                "Enable or disable a source, or change its policies (the keys given)",
                {
                    200: ("The source.", ref(SourceView)),
                    400: _INVALID,
                    404: _MISSING,
                    409: _READ_ONLY,
                },
                SourceChange,
            ),
        },
        "/v1/sources/{id}/keys": {
            "parameters": [_ID],
            "post": operation(
                "add_key",
                "Make a key for a source: shown this once, kept only as its SHA-256",
                {
                    201: ("The key, in clear, this once.", ref(NewKeyView)),
                    400: _INVALID,
                    404: _MISSING,
                    409: _READ_ONLY,
                },
                NewKey,
            ),
        },
        "/v1/sources/{id}/keys/{keyId}/rotate": {
            "parameters": [_ID, _KEY_ID],
            "post": operation(
                "rotate_key",
                "Replace a key; the old one works for graceSeconds more, then stops",
                {201: ("The new key, in clear, this once.", ref(NewKeyView)), 404: _MISSING},
                Rotation,
            ),
        },
        "/v1/sources/{id}/keys/{keyId}": {
            "parameters": [_ID, _KEY_ID],
            "delete": operation(
                "revoke_key",
                "Revoke a key: it stops now, on every process within a second",
                {204: ("Revoked.", None), 404: _MISSING},
            ),
        },
    }
