"""Sources: which writeKeys the gateway accepts, and the source id each one stands for.

The sources file is TOML::

    [[source]]
    id = "web"
    write_keys = ["wk_live_9f2c", "wk_live_old"]   # several, for rotation
    enabled = true

With no file the gateway is open: every message is accepted as the source `default`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

import msgspec

from gateway.constants import DEFAULT_SOURCE

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class Source(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One configured source."""

    id: NonEmpty
    write_keys: list[NonEmpty]
    enabled: bool = True
    webhook_event: NonEmpty = "Webhook Received"
    """The `event` of a `track` message made from a third party's webhook payload."""


class _SourcesFile(msgspec.Struct, forbid_unknown_fields=True):
    source: list[Source] = []


class SourcesError(ValueError):
    """A sources file that cannot be used; the message says where and why."""


OPEN_SOURCE = Source(id=DEFAULT_SOURCE, write_keys=[])


class Sources:
    """Resolves a writeKey to its source; `None` means the key is missing, unknown or off."""

    def __init__(self, sources: list[Source] | None) -> None:
        self.open = sources is None
        self._by_key: dict[str, Source] = {}
        for source in sources or ():
            for key in source.write_keys:
                other = self._by_key.get(key)
                if other is not None:
                    raise SourcesError(
                        f"a writeKey is listed under both source {other.id!r} and {source.id!r}"
                    )
                self._by_key[key] = source

    @classmethod
    def from_file(cls, path: Path | None) -> Sources:
        """Load the TOML sources file; `None` gives open mode."""
        if path is None:
            return cls(None)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SourcesError(f"cannot read sources file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SourcesError(f"sources file {path} is not valid TOML: {exc}") from None
        try:
            parsed = msgspec.convert(raw, _SourcesFile)
        except msgspec.ValidationError as exc:
            raise SourcesError(f"sources file {path}: {exc}") from None
        ids = [s.id for s in parsed.source]
        if len(set(ids)) != len(ids):
            raise SourcesError(f"sources file {path}: a source id is used twice")
        return cls(parsed.source)

    def resolve(self, write_key: str | None) -> Source | None:
        """The enabled source for `write_key`, or `None` when it must be refused."""
        if self.open:
            return OPEN_SOURCE
        if not write_key:
            return None
        source = self._by_key.get(write_key)
        if source is None or not source.enabled:
            return None
        return source

    def __len__(self) -> int:
        return len({s.id for s in self._by_key.values()})
