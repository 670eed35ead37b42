"""Sources: which writeKeys the gateway accepts, and the source id each one stands for.

The sources file is TOML::

    [[source]]
    id = "web"
    write_keys = ["wk_live_9f2c", "wk_live_old"]   # several, for rotation
    enabled = true

    [source.commanders_act]        # optional: Commanders Act's `POST /events` for this source
    site_id = 1234                 # the `tc_s` its clients send
    source_keys = ["7183b9d4-..."] # the `token`s (source keys) they send

    [source.consent_settings]      # optional: analytics.js's settings carry these as given
    allCategories = ["Analytics"]  # (so does `[source.plan]`: docs/browser-pixels-webhooks.md)

With no file the gateway is open: every message is accepted as the source `default`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import msgspec

from gateway.constants import DEFAULT_SOURCE
from gateway.ingest.intilery_source import Intilery

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class CommandersAct(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A source's Commanders Act identity: the site (`tc_s`) and source keys (`token`)."""

    site_id: int | NonEmpty
    source_keys: list[NonEmpty]


class Source(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One configured source."""

    id: NonEmpty
    write_keys: list[NonEmpty]
    enabled: bool = True
    webhook_event: NonEmpty = "Webhook Received"
    """The `event` of a `track` message made from a third party's webhook payload."""
    commanders_act: CommandersAct | None = None
    """Accept Commanders Act's `POST /events` for this source (docs/commanders-act.md)."""
    intilery: Intilery | None = None
    """The Intilery account this source is, and its tokens (docs/intilery.md)."""
    plan: dict[str, Any] | None = None
    """The tracking plan analytics.js's settings carry, as Segment's (`track.{event}`...)."""
    consent_settings: dict[str, Any] | None = None
    """analytics.js's `consentSettings` (`allCategories`, ...), as given."""


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
        self._by_commanders_act_key = _commanders_act_keys(sources or ())
        self._intilery: dict[tuple[str, str], Source] = {}
        for source in sources or ():
            if source.intilery is not None:
                other = self._intilery.setdefault(source.intilery.account_key, source)
                if other is not source:
                    raise SourcesError(
                        f"Intilery account {'/'.join(source.intilery.account_key)!r} is "
                        f"configured under both source {other.id!r} and {source.id!r}"
                    )

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

    def by_commanders_act_key(self, token: str) -> Source | None:
        """The source whose Commanders Act source keys include `token`, enabled or not."""
        return self._by_commanders_act_key.get(token)

    def intilery(self, client: str, account: str) -> Source | None:
        """The enabled source of an Intilery account (case-insensitive), if configured."""
        source = self._intilery.get((client.lower(), account.lower()))
        return source if source is not None and source.enabled else None

    def __len__(self) -> int:
        configured = (
            *self._by_key.values(),
            *self._by_commanders_act_key.values(),
            *self._intilery.values(),
        )
        return len({s.id for s in configured})


def _commanders_act_keys(sources: Iterable[Source]) -> dict[str, Source]:
    by_key: dict[str, Source] = {}
    for source in sources:
        for key in source.commanders_act.source_keys if source.commanders_act else ():
            other = by_key.get(key)
            if other is not None:
                raise SourcesError(
                    f"a Commanders Act source key is listed under both source {other.id!r} "
                    f"and {source.id!r}"
                )
            by_key[key] = source
    return by_key
