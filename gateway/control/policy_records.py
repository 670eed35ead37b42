"""A source's policies through the admin API: taken from a body, kept, shown masked.

`POST /v1/sources` and `PATCH /v1/sources/{id}` take the sources file's policy keys
(`gateway.ingest.policy.Policies`) at the top of their body. A PATCH changes only the
policies it names (`null` clears `rate_limit`); the change is in force on every process
within a poll (`gateway.control.live`). A hashed field needs a secret: when none is given
the gateway makes one, kept with the source's record and never shown.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from typing import Any

import msgspec

from gateway.errors import ApiError, invalid
from gateway.ingest.policy import NO_POLICIES, Policies, PolicyError, check

MASK = "********"
"""What a view shows of a source's `hash_secret`."""

POLICY_FIELDS = frozenset(Policies.__struct_fields__)


def changed(current: Policies, given: Policies, names: Collection[str]) -> Policies:
    """`current` with the policies `names` (a body's keys) taken from `given`; a hashed
    field gets a secret; 400 when they cannot be used together."""
    update: dict[str, Any] = {n: getattr(given, n) for n in names if n in POLICY_FIELDS}
    policies = msgspec.structs.replace(current, **update)
    if policies.hash_secret is None and "hash" in policies.fields.values():
        policies = msgspec.structs.replace(policies, hash_secret=secrets.token_urlsafe(32))
    try:
        check(policies)
    except PolicyError as exc:
        raise invalid("Invalid policies", str(exc)) from None
    return policies


def shown_policies(source: Policies) -> Policies | None:
    """The policies of `source` (a `Source`, a body...) as a view shows them: the secret
    masked; None when it has none."""
    policies = Policies(**{name: getattr(source, name) for name in POLICY_FIELDS})
    if policies == NO_POLICIES:
        return None
    if policies.hash_secret is None:
        return policies
    return msgspec.structs.replace(policies, hash_secret=MASK)


def body_keys(raw: bytes) -> set[str]:
    """The keys of a JSON object body (which policies a PATCH names)."""
    try:
        decoded = msgspec.json.decode(raw or b"{}")
    except msgspec.DecodeError as exc:
        raise invalid("The body is not JSON", str(exc)) from None
    if not isinstance(decoded, dict):
        raise ApiError(400, "Invalid request body", "expected a JSON object")
    return set(decoded)
