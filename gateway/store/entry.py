"""The unit the store takes: one stream entry, made by ingest, added by the writers."""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    """One stream entry to add: where, and its fields."""

    stream: str
    data: bytes
    source: str
    message_id: str
    route: str = ""
    """The route it came by (`/v1/track`), kept in the messageId index; "" if not known."""
