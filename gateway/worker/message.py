"""One stream entry as the worker hands it to destinations."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """A message read from a partition stream.

    `data` is the enriched message exactly as the gateway enqueued it (UTF-8 JSON); `body`
    is the same, decoded. Destinations that forward JSON should send `data` unchanged.
    """

    stream: str
    """The partition stream key, `gateway:events:{n}`."""
    id: str
    """The stream entry id."""
    data: bytes
    body: dict[str, Any]
    source: str
    attempt: int = 1
    """How many times this entry has been handed to a worker, this time included."""

    @property
    def key(self) -> tuple[str, str]:
        """Unique across partitions (entry ids are unique only within one stream)."""
        return (self.stream, self.id)
