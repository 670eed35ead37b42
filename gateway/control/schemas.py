"""The admin API's bodies: what it takes and what it answers, as msgspec structs that both
check the requests and make the OpenAPI document's schemas (`gateway.control.openapi`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from gateway.control.records import KeyRecord, SourceId
from gateway.ingest.policy import Policies
from gateway.ingest.sources import KeyKind

_Name = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[^/\s]+$")]
"""An Intilery client, account or brand: a path segment."""
_Site = int | Annotated[str, msgspec.Meta(min_length=1)]


class NewSource(Policies, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """`POST /v1/sources`: its id, and its policies as in the sources file
    (docs/policies.md)."""

    id: SourceId
    enabled: bool = True


class SourceChange(Policies, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """`PATCH /v1/sources/{id}`: the keys given change, the others stay."""

    enabled: bool | None = None


class NewKey(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /v1/sources/{id}/keys`: the kind, and what that kind needs."""

    kind: KeyKind
    site_id: _Site | None = None
    """commanders_act: the site (`tc_s`) its clients send; every such key of a source names
    the same site. `siteId` is taken too."""
    siteId: _Site | None = None
    client: _Name | None = None
    """intilery: the account's client, as in the path (with `account`)."""
    account: _Name | None = None
    brand: _Name | None = None
    """intilery: the one brand the token has rights on; none: every brand."""


class Rotation(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /v1/sources/{id}/keys/{keyId}/rotate`."""

    graceSeconds: Annotated[float, msgspec.Meta(ge=0)] = 0
    """How long the old key keeps working; 0: it stops now."""


class KeyView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A key as listed: masked."""

    id: str | None = None
    """None for a key of the sources file (not managed here)."""
    kind: KeyKind
    key: str
    """Masked: `wk_…x7Qa`."""
    createdAt: float | None = None
    expiresAt: float | None = None
    siteId: str | None = None
    client: str | None = None
    account: str | None = None
    brand: str | None = None


class NewKeyView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A key just made: the key itself, shown this once."""

    id: str
    source: str
    kind: KeyKind
    key: str
    createdAt: float
    siteId: str | None = None
    client: str | None = None
    account: str | None = None
    brand: str | None = None
    replaces: str | None = None
    """After a rotation: the old key's id."""


class SourceView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A source as listed."""

    id: str
    enabled: bool
    origin: Literal["file", "api"]
    readOnly: bool
    """True for the sources file's: change them in the file."""
    keys: list[KeyView]
    createdAt: float | None = None
    policies: Policies | None = None
    """docs/policies.md; `hash_secret` masked."""


class SourcesView(msgspec.Struct):
    """`GET /v1/sources`."""

    mode: Literal["open", "sources"]
    """open: no source exists and every writeKey is accepted."""
    sources: list[SourceView]


class PlanView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A source's plan as the API shows it."""

    source: str
    name: str
    events: int
    """Track events planned."""
    digest: str
    """A fingerprint of the document: tells versions apart."""
    mode: str
    unplanned: str
    modes: dict[str, str]
    origin: str
    """file or api."""
    plan: dict[str, Any]
    updatedAt: float | None = None


def masked(record: KeyRecord) -> KeyView:
    """The listing's view of an API key."""
    return KeyView(
        id=record.id,
        kind=record.kind,
        key=record.hint,
        createdAt=record.createdAt,
        expiresAt=record.expiresAt,
        siteId=record.siteId,
        client=record.client,
        account=record.account,
        brand=record.brand,
    )


def shown(record: KeyRecord, key: str, replaces: str | None = None) -> NewKeyView:
    """The answer that makes a key: the only place the key appears."""
    return NewKeyView(
        id=record.id,
        source=record.source,
        kind=record.kind,
        key=key,
        createdAt=record.createdAt,
        siteId=record.siteId,
        client=record.client,
        account=record.account,
        brand=record.brand,
        replaces=replaces,
    )
