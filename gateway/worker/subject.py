"""Whose messages a regulation is about, and telling them apart (workers and destinations)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import msgspec

_decode = msgspec.json.Decoder(dict[str, Any]).decode


@dataclasses.dataclass(frozen=True, slots=True)
class Subject:
    """The subjects of one regulation: their ids, of one type, in one source or all."""

    regulation: str
    """The regulation's id (a destination may pass it on)."""
    regulation_type: str
    subject_type: str
    """`USER_ID` or `ANONYMOUS_ID`."""
    ids: frozenset[str]
    source: str | None = None
    """Only this source's messages; all when None."""

    @property
    def field(self) -> str:
        """The message field the ids are in."""
        return "userId" if self.subject_type == "USER_ID" else "anonymousId"

    def matches(self, body: Mapping[str, Any], source: str | None = None) -> bool:
        """Whether a decoded message (from `source`, when known) is one of the subjects'."""
        if self.source is not None and source is not None and source != self.source:
            return False
        value = body.get(self.field)
        if value is None or value == "":
            return False
        return (value if isinstance(value, str) else str(value)) in self.ids

    def matches_data(self, data: bytes, source: str | None = None) -> bool:
        """`matches` for a message as stored (UTF-8 JSON); False for what does not decode."""
        try:
            body = _decode(data)
        except msgspec.DecodeError:
            return False
        return self.matches(body, source)
