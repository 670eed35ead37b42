"""Commanders Act events as Segment `track` messages (the mapping of docs/commanders-act.md).

A v2 event has its data at the root and its metadata under `context`; a v1 event (the
format before November 2022) has its data under `properties` and its metadata at the root.
Both map to the same message. What has no Segment home is kept under
`context.commandersAct`, so nothing the client sent is lost. Nothing here speaks HTTP.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.ops import timestamps

V1 = "commanders-act-v1"
V2 = "commanders-act-v2"
LEFTOVERS = "commandersAct"
"""The key under `context` that keeps what has no Segment home."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MILLIS = 253402300799999
"""9999-12-31T23:59:59.999Z, the last moment an ISO-8601 year of four digits can say."""
_MAX_ID = 100
"""The longest messageId the gateway keeps (as on every route)."""
_DEVICE = {"user_agent": "userAgent", "ip": "ip", "lang": "locale", "timezone": "timezone"}
"""`device` fields that have a Segment home in `context`."""


class MappingError(ValueError):
    """An event that cannot become a message; the text names the field as the client sent it."""


def from_v2(event: dict[str, Any], site_id: str | None) -> dict[str, Any]:
    """The `track` message of a v2 event: data at the root, metadata under `context`."""
    data = dict(event)
    name = data.pop("event_name", None)
    user = _object(data.pop("user", None), "user")
    meta = _object(data.pop("context", None), "context")
    # The document's own batch example puts event_timestamp at the root, as v1 did.
    if "event_timestamp" in data and "event_timestamp" not in meta:
        meta["event_timestamp"] = data.pop("event_timestamp")
    return _message(name, data, user, meta, "user.", "context.", V2, site_id)


def from_v1(event: dict[str, Any], site_id: str | None) -> dict[str, Any]:
    """The `track` message of a v1 event: data under `properties`, metadata at the root."""
    meta = dict(event)
    name = meta.pop("event_name", None)
    data = _object(meta.pop("properties", None), "properties")
    if "user" in data:
        user = _object(data.pop("user"), "properties.user")
        user_path = "properties.user."
    else:
        user = _object(meta.pop("user", None), "user")
        user_path = "user."
    return _message(name, data, user, meta, user_path, "", V1, site_id)


def is_v1(event: object, bearer: bool) -> bool:
    """Whether to read `event` as v1: a `context` object says v2, a `properties` object
    (without `context`) v1; with neither, a key sent as v1 sends it (`bearer`) decides."""
    if isinstance(event, dict):
        if isinstance(event.get("context"), dict):
            return False
        if isinstance(event.get("properties"), dict):
            return True
    return bearer


def _message(
    name: object,
    properties: dict[str, Any],
    user: dict[str, Any],
    meta: dict[str, Any],
    user_path: str,
    meta_path: str,
    dialect: str,
    site_id: str | None,
) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise MappingError("event_name is required (a non-empty string)")
    message: dict[str, Any] = {"event": name, "properties": properties}
    context: dict[str, Any] = {
        "library": {"name": "commanders-act", "version": "1.0" if dialect == V1 else "2.0"}
    }
    leftovers: dict[str, Any] = {}
    if site_id is not None:
        leftovers["siteId"] = site_id

    _identity(message, user, user_path)
    consent = user.pop("consent_categories", None)
    if consent is not None:
        leftovers["consent_categories"] = consent
        if isinstance(consent, list) and all(_is_id(c) for c in consent):
            # Segment's consent shape: the categories the user granted, each `true`.
            context["consent"] = {"categoryPreferences": {str(c): True for c in consent}}
    if user:
        context["traits"] = user

    event_id = meta.pop("event_id", None)
    if event_id is not None and event_id != "":
        message["messageId"] = _event_id(event_id, meta_path + "event_id")
    stamp = meta.pop("event_timestamp", None)
    if stamp is not None:
        message["originalTimestamp"] = _millis(stamp, meta_path + "event_timestamp")
    page = _object(meta.pop("page", None), meta_path + "page")
    if "location" in page and "url" not in page:
        page["url"] = page.pop("location")  # v1's name of the page's URL
    if page:
        context["page"] = page
    device = _object(meta.pop("device", None), meta_path + "device")
    for field, home in _DEVICE.items():
        value = device.get(field)
        if isinstance(value, str) and value:
            context[home] = device.pop(field)
    if "locale" not in context and isinstance(page.get("lang"), str) and page["lang"]:
        context["locale"] = page["lang"]  # the page's language, when the browser's is unknown
    if device:
        leftovers["device"] = device
    if meta:
        leftovers["context"] = meta
    if leftovers:
        context[LEFTOVERS] = leftovers
    message["context"] = context
    return message


def _identity(message: dict[str, Any], user: dict[str, Any], path: str) -> None:
    for field, home in (("id", "userId"), ("consistent_anonymous_id", "anonymousId")):
        value = user.pop(field, None)
        if value is None or value == "":
            continue
        if not _is_id(value):
            raise MappingError(f"{path}{field} must be a string or an integer")
        message[home] = value
    if "userId" not in message and "anonymousId" not in message:
        raise MappingError(f"{path}id or {path}consistent_anonymous_id is required")


def _event_id(value: object, path: str) -> str:
    if not _is_id(value):
        raise MappingError(f"{path} must be a string or an integer")
    text = str(value)
    if not text or len(text) > _MAX_ID:
        raise MappingError(f"{path} must have 1 to {_MAX_ID} characters")
    return text


def _millis(value: object, path: str) -> str:
    """Milliseconds since the epoch (a number or a string of digits) as ISO-8601."""
    millis: float
    if isinstance(value, int | float) and not isinstance(value, bool):
        millis = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        millis = int(value.strip())
    else:
        raise MappingError(f"{path} must be milliseconds since 1970, a number or a string")
    if not 0 <= millis <= _MAX_MILLIS:
        raise MappingError(f"{path} is out of range: {value!r}")
    return timestamps.iso(_EPOCH + timedelta(milliseconds=millis))


def _object(value: object, path: str) -> dict[str, Any]:
    """A copy of an optional object field (the mapping pops from it)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MappingError(f"{path} must be an object")
    return dict(value)


def _is_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
