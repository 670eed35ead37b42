"""Sources and keys made through the admin API, as Redis keeps them and the API shows them.

A key is kept as its SHA-256 digest and a hint (`wk_…x7Qa`: its kind's prefix and last four
characters), never in clear: the clear key is in the answer that made it, and nowhere else.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Annotated

import msgspec

from gateway.ingest.intilery_source import Intilery
from gateway.ingest.policy import NO_POLICIES, Policies
from gateway.ingest.sources import CommandersAct, Key, KeyKind, Source, key_digest
from gateway.ingest.tracking_plan import PlanSettings

SourceId = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
_Name = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[^/\s]+$")]

PREFIXES: dict[KeyKind, str] = {"write_key": "wk_", "commanders_act": "", "intilery": "tok_"}
"""How each kind of key begins; Commanders Act's source keys are UUIDs, as theirs."""


class SourceRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A source made through the admin API."""

    id: str
    enabled: bool = True
    createdAt: float
    policies: Policies = NO_POLICIES
    """Its policies, `hash_secret` included: the admin API shows it masked."""


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A key of an API source: its digest, never the key."""

    id: str
    source: str
    kind: KeyKind
    digest: str
    """SHA-256 of the key, in hex."""
    hint: str
    createdAt: float
    expiresAt: float | None = None
    """A rotated key's end (Unix time); None: until revoked."""
    siteId: str | None = None
    client: str | None = None
    account: str | None = None
    brand: str | None = None

    def expired(self, now: float) -> bool:
        """Whether the key has stopped (the grace of its rotation is over)."""
        return self.expiresAt is not None and self.expiresAt <= now


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """Whom a key speaks for, besides its source: the Commanders Act site, the Intilery
    account (and brand)."""

    siteId: str | None = None
    client: str | None = None
    account: str | None = None
    brand: str | None = None


class PlanRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An API source's tracking plan (`gateway.control.plans_api`)."""

    source: str
    settings: PlanSettings
    """The document and its modes (never a `path`)."""
    updatedAt: float


class Records(msgspec.Struct, frozen=True):
    """Everything the admin API made, as read from Redis in one go."""

    sources: dict[str, SourceRecord]
    keys: dict[str, KeyRecord]
    plans: dict[str, PlanRecord] = {}
    """By source id."""


def new_key(kind: KeyKind) -> str:
    """A fresh key of `kind`: random, so that its plain SHA-256 cannot be reversed."""
    if kind == "commanders_act":
        return str(uuid.uuid4())
    return PREFIXES[kind] + secrets.token_urlsafe(24)


def new_key_id() -> str:
    """The public id of a key (in paths and listings; it opens nothing)."""
    return "key_" + secrets.token_hex(8)


def hint(key: str) -> str:
    """What the API shows of a key after it made it: `wk_…x7Qa`."""
    prefix = next((p for p in PREFIXES.values() if p and key.startswith(p)), "")
    return f"{prefix}…{key[-4:]}"


def record_key(key: str, source: str, kind: KeyKind, identity: Identity) -> KeyRecord:
    """The record of a newly made `key`."""
    return KeyRecord(
        id=new_key_id(),
        source=source,
        kind=kind,
        digest=key_digest(key).hex(),
        hint=hint(key),
        createdAt=time.time(),
        siteId=identity.siteId,
        client=identity.client,
        account=identity.account,
        brand=identity.brand,
    )


def as_source(
    record: SourceRecord, keys: list[KeyRecord], plan: PlanRecord | None = None
) -> Source:
    """The table's `Source` for an API source: its Commanders Act site and Intilery account
    come from its keys (every key of a kind names the same one, as the API checks)."""
    site = next((k.siteId for k in keys if k.kind == "commanders_act" and k.siteId), None)
    account = next((k for k in keys if k.kind == "intilery" and k.client and k.account), None)
    return Source(
        **msgspec.structs.asdict(record.policies),
        id=record.id,
        write_keys=[],
        enabled=record.enabled,
        commanders_act=CommandersAct(site_id=site, source_keys=[]) if site else None,
        intilery=(
            Intilery(client=account.client, account=account.account)
            if account and account.client and account.account
            else None
        ),
        tracking_plan=None if plan is None else plan.settings,
    )


def as_key(record: KeyRecord) -> Key:
    """The table's `Key` for a key record."""
    return Key(
        kind=record.kind,
        digest=bytes.fromhex(record.digest),
        source=record.source,
        expires=record.expiresAt,
        brand=record.brand,
    )
