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

    [source.tracking_plan]         # optional: Segment's tracking-plan JSON, enforced here
    path = "plans/web.json"        # relative to this file (docs/tracking-plans.md)
    mode = "allow"                 # allow | omit | block; unplanned = "allow" | "block"

A source's policies (`ip`, `fields`, `rate_limit`, ...: `gateway.ingest.policy`,
docs/policies.md) sit in its table too.

With no file the gateway is open: every message is accepted as the source `default`.
"""

from __future__ import annotations

import hashlib
import time
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from gateway.constants import DEFAULT_SOURCE
from gateway.ingest.intilery_source import Intilery
from gateway.ingest.plan_enforce import enforcers as compile_plans
from gateway.ingest.policy import Policies, PolicyError, RateLimit
from gateway.ingest.redact import Enforcer
from gateway.ingest.tracking_plan import PlanError, PlanSettings, read_plan

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class CommandersAct(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A source's Commanders Act identity: the site (`tc_s`) and source keys (`token`)."""

    site_id: int | NonEmpty
    source_keys: list[NonEmpty]


class Source(Policies, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One configured source, with its policies (`gateway.ingest.policy`)."""

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
    tracking_plan: PlanSettings | None = None
    """The schema of every event, enforced here (docs/tracking-plans.md)."""


class _SourcesFile(msgspec.Struct, forbid_unknown_fields=True):
    source: list[Source] = []


class SourcesError(ValueError):
    """A sources file that cannot be used; the message says where and why."""


OPEN_SOURCE = Source(id=DEFAULT_SOURCE, write_keys=[])

KeyKind = Literal["write_key", "commanders_act", "intilery"]
"""What a key opens: the event routes (writeKey), Commanders Act's or Intilery's routes."""


def key_digest(key: str) -> bytes:
    """What the table keeps of a key (and Redis, for keys made through the admin API): its
    SHA-256. Keys made by the gateway are random, so a plain hash cannot be reversed."""
    return hashlib.sha256(key.encode()).digest()


class Key(msgspec.Struct, frozen=True, kw_only=True):
    """A key known only by its digest (made through the admin API) and what it opens."""

    kind: KeyKind
    digest: bytes
    source: str
    expires: float | None = None
    """Unix time after which the key stops (a rotated key's grace); None: never."""
    brand: str | None = None
    """An Intilery token's one brand; None: every brand of the account."""


class _Grant(msgspec.Struct, frozen=True, gc=False):
    source: Source
    expires: float | None = None
    brands: frozenset[str] | None = None
    """The Intilery brands the token has rights on; None: all."""


class Sources:
    """The sources table: resolves a key to its source; `None` means missing, unknown or off.

    One structure serves the sources file and the admin API: every key is looked up by its
    digest (`key_digest`), so a key the gateway only knows hashed is found like one from
    the file. A table is never changed: a new one replaces it whole (`gateway.control`).
    """

    def __init__(self, sources: list[Source] | None, keys: Iterable[Key] = ()) -> None:
        self.open = sources is None
        self.configured: tuple[Source, ...] = tuple(sources or ())
        by_id = {source.id: source for source in self.configured}
        self._by_key: dict[bytes, _Grant] = {}
        self._by_commanders_act_key: dict[bytes, _Grant] = {}
        self._intilery: dict[tuple[str, str], Source] = {}
        self._intilery_tokens: dict[tuple[str, str, bytes], _Grant] = {}
        self.enforcers: dict[str, Enforcer] = {}
        """Source id -> its compiled policies, for the sources that have any."""
        self.limits: dict[str, RateLimit] = {}
        """Source id -> its rate limit, for the sources that have one."""
        for source in self.configured:
            self._add_policies(source)
            for key in source.write_keys:
                self._add(self._by_key, key_digest(key), _Grant(source), "a writeKey")
            for key in source.commanders_act.source_keys if source.commanders_act else ():
                self._add(
                    self._by_commanders_act_key,
                    key_digest(key),
                    _Grant(source),
                    "a Commanders Act source key",
                )
            if source.intilery is not None:
                self._add_account(source, source.intilery)
        for given in keys:
            self._add_key(by_id[given.source], given)
        planned = ((s.id, s.tracking_plan) for s in self.configured if s.tracking_plan)
        try:  # compiled with the table, so that a source and its plan change together
            self.plans = compile_plans(planned)
            """The sources' tracking plans, by source id."""
        except PlanError as exc:
            raise SourcesError(str(exc)) from None

    def _add_key(self, source: Source, key: Key) -> None:
        if key.kind == "write_key":
            self._by_key[key.digest] = _Grant(source, key.expires)
        elif key.kind == "commanders_act":
            self._by_commanders_act_key[key.digest] = _Grant(source, key.expires)
        elif source.intilery is not None:
            brands = None if key.brand is None else frozenset((key.brand,))
            account = (*source.intilery.account_key, key.digest)
            self._intilery_tokens[account] = _Grant(source, key.expires, brands)

    def _add_policies(self, source: Source) -> None:
        try:
            enforcer = Enforcer.of(source)
        except PolicyError as exc:
            raise SourcesError(f"source {source.id!r}: {exc}") from None
        if enforcer is not None:
            self.enforcers[source.id] = enforcer
        if source.rate_limit is not None:
            self.limits[source.id] = source.rate_limit

    @staticmethod
    def _add(table: dict[bytes, _Grant], digest: bytes, grant: _Grant, what: str) -> None:
        other = table.setdefault(digest, grant)
        if other is not grant:
            raise SourcesError(
                f"{what} is listed under both source {other.source.id!r} and {grant.source.id!r}"
            )

    def _add_account(self, source: Source, account: Intilery) -> None:
        other = self._intilery.setdefault(account.account_key, source)
        if other is not source:
            raise SourcesError(
                f"Intilery account {'/'.join(account.account_key)!r} is "
                f"configured under both source {other.id!r} and {source.id!r}"
            )
        tokens: list[tuple[str, str | None]] = [(t, None) for t in account.tokens]
        tokens += [(t, b) for b, listed in account.brands.items() for t in listed]
        for token, brand in tokens:
            key = (*account.account_key, key_digest(token))
            had = self._intilery_tokens.get(key)
            brands = None if brand is None or (had and had.brands is None) else {brand}
            if had is not None and had.brands is not None and brands is not None:
                brands |= had.brands
            self._intilery_tokens[key] = _Grant(source, None, _frozen(brands))

    @classmethod
    def from_file(cls, path: Path | None) -> Sources:
        """Load the TOML sources file; `None` gives open mode."""
        return cls(read_file(path))

    def resolve(self, write_key: str | None) -> Source | None:
        """The enabled source for `write_key`, or `None` when it must be refused."""
        if self.open:
            return OPEN_SOURCE
        if not write_key:
            return None
        grant = self._by_key.get(key_digest(write_key))
        if grant is None or not grant.source.enabled or _expired(grant):
            return None
        return grant.source

    def by_commanders_act_key(self, token: str) -> Source | None:
        """The source whose Commanders Act source keys include `token`, enabled or not."""
        grant = self._by_commanders_act_key.get(key_digest(token))
        return None if grant is None or _expired(grant) else grant.source

    def intilery(self, client: str, account: str, token: str, brand: str) -> Source | None:
        """The enabled source of an Intilery account (case-insensitive) when `token` has
        rights on `brand` of it."""
        grant = self._intilery_tokens.get((client.lower(), account.lower(), key_digest(token)))
        if grant is None or _expired(grant) or not grant.source.enabled:
            return None
        if grant.brands is not None and brand not in grant.brands:
            return None
        return grant.source

    def account_owner(self, client: str, account: str) -> Source | None:
        """The source an Intilery account is configured under, if any."""
        return self._intilery.get((client.lower(), account.lower()))

    def __len__(self) -> int:
        return len(self.configured)


def read_file(path: Path | None) -> list[Source] | None:
    """The sources of a TOML sources file; `None` (no file) gives open mode."""
    if path is None:
        return None
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
    found = [_with_plan(s, path.parent) for s in parsed.source]
    Sources(found)  # the same key twice, an account twice: refused here
    return found


def _with_plan(source: Source, base: Path) -> Source:
    """`source` with its tracking plan's document read (its path is relative to `base`)."""
    settings = source.tracking_plan
    if settings is None or settings.path is None:
        return source
    try:
        document = read_plan(base / settings.path)
    except PlanError as exc:
        raise SourcesError(f"source {source.id!r}: {exc}") from None
    plan = msgspec.structs.replace(settings, plan=document)
    return msgspec.structs.replace(source, tracking_plan=plan)


def _expired(grant: _Grant) -> bool:
    return grant.expires is not None and grant.expires <= time.time()


def _frozen(brands: set[str] | None) -> frozenset[str] | None:
    return None if brands is None else frozenset(brands)
