"""The live inspector's rows: one per message seen, read from what the gateway writes (the
event streams, `gateway:refused`, `gateway:rejected`, `gateway:inspect`), and the page's
filters on them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from gateway.constants import INSPECT_STREAM, REFUSED_STREAM, REJECTED_STREAM
from gateway.store.inspector_ring import Summary, summary

MAX_DATA = 4_096
"""Characters of a message's JSON a row carries, for the details pane."""
FILTERS = ("source", "type", "event", "userId", "messageId", "outcome")
"""The page's filters, as query parameters; `userId` matches either id."""


class Row(msgspec.Struct, omit_defaults=True):
    """One message, as the page shows it."""

    at: int
    """When, in milliseconds since the epoch."""
    outcome: str
    """accepted, duplicate, refused, blocked, suppressed, throttled or spooled."""
    source: str = ""
    route: str = ""
    type: str = ""
    event: str = ""
    userId: str = ""
    anonymousId: str = ""
    messageId: str = ""
    reason: str = ""
    stream: str = ""
    entryId: str = ""
    data: str = ""
    """The message's JSON (cut to `MAX_DATA`): as stored, or as sent when not stored."""


class Filters:
    """The filters of a page: every one given must match."""

    def __init__(self, query: Mapping[str, str]) -> None:
        self.wanted = {k: query[k] for k in FILTERS if query.get(k)}

    def matches(self, row: Row) -> bool:
        """Whether `row` passes every filter."""
        for name, value in self.wanted.items():
            if name == "userId":
                if value not in (row.userId, row.anonymousId):
                    return False
            elif getattr(row, name) != value:
                return False
        return True


def row_of(stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> Row | None:
    """The row of one stream entry; None for one that is not a message."""
    ident = entry_id.decode()
    if stream == REFUSED_STREAM:
        return _refused(ident, fields)
    if stream == INSPECT_STREAM:
        return _noted(ident, fields)
    data = fields.get(b"data", b"")
    if stream == REJECTED_STREAM:
        return _rejected(ident, data)
    return _row(
        at=milliseconds(ident),
        outcome="accepted",
        shown=summary(data),
        source=_text(fields.get(b"source")),
        stream=stream,
        entryId=ident,
        data=_text(data)[:MAX_DATA],
    )


def milliseconds(entry_id: str) -> int:
    """The time of a stream entry id."""
    return int(entry_id.partition("-")[0] or 0)


def _row(*, at: int, outcome: str, shown: Summary, **more: str) -> Row:
    text = shown.fields()
    return Row(
        at=at,
        outcome=outcome,
        type=text["type"],
        event=text["event"],
        userId=text["userId"],
        anonymousId=text["anonymousId"],
        messageId=text["messageId"],
        **more,
    )


_TEXT = ("source", "route", "type", "event", "userId", "anonymousId", "messageId", "reason")
"""The row's fields that `gateway:refused` and `gateway:inspect` entries hold by name."""


def _by_name(
    ident: str, fields: dict[bytes, bytes], stream: str, at: int, outcome: str, data: str = ""
) -> Row:
    text = {name: _text(fields.get(name.encode())) for name in _TEXT}
    return Row(at=at, outcome=outcome, stream=stream, entryId=ident, data=data, **text)


def _refused(ident: str, fields: dict[bytes, bytes]) -> Row:
    try:
        at = int(datetime.fromisoformat(_text(fields.get(b"at"))).timestamp() * 1000)
    except ValueError:
        at = milliseconds(ident)
    return _by_name(ident, fields, REFUSED_STREAM, at, "refused")


def _noted(ident: str, fields: dict[bytes, bytes]) -> Row:
    at = _text(fields.get(b"at"))
    outcome = _text(fields.get(b"outcome"))
    data = _text(fields.get(b"data"))[:MAX_DATA]
    return _by_name(ident, fields, INSPECT_STREAM, int(at or milliseconds(ident)), outcome, data)


class _Rejected(msgspec.Struct):
    reason: Any = ""
    source: Any = ""
    route: Any = ""
    dialect: Any = ""
    body: msgspec.Raw = msgspec.Raw(b"null")
    violations: Any = None


def _rejected(ident: str, data: bytes) -> Row | None:
    try:
        record = msgspec.json.decode(data, type=_Rejected)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    body = bytes(record.body)
    return _row(
        at=milliseconds(ident),
        outcome="blocked" if record.violations else "refused",
        shown=summary(body),
        source=_text(record.source),
        route=_text(record.route) or _text(record.dialect),
        reason=_text(record.reason),
        stream=REJECTED_STREAM,
        entryId=ident,
        data=body.decode("utf-8", "replace")[:MAX_DATA],
    )


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)
