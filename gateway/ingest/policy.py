"""A source's policies, as the sources file and the admin API give them (docs/policies.md)::

    [[source]]
    id = "web"
    write_keys = ["wk_web"]
    ip = "truncate"                              # keep | truncate | drop
    allowed_origins = ["https://shop.example"]   # browsers on other origins are refused
    no_consent = "deliver"                       # deliver | withhold
    hash_secret = "..."                          # the HMAC key of `hash` fields
    [source.fields]
    "traits.email" = "hash"                      # hash | drop
    "properties.card" = "drop"
    [source.rate_limit]
    rate = 100                                   # messages per second
    burst = 200
    per_user = false                             # one bucket per userId/anonymousId
    over_limit = "refuse"                        # refuse (429) | drop (200, counted)

Every policy is off unless set. `Policies` is the base of `gateway.ingest.sources.Source`,
so its fields sit at the top of a `[[source]]` table.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

IpPolicy = Literal["keep", "truncate", "drop"]
FieldAction = Literal["hash", "drop"]
NoConsent = Literal["deliver", "withhold"]
OverLimit = Literal["refuse", "drop"]

FieldPath = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[^.\s*]+(\.[^.\s*]+)*(\.\*)?$")]
"""`traits.email`, `context.traits.phone`, `properties.card.*` (every key of `card`)."""
Origin = Annotated[str, msgspec.Meta(pattern=r"^(https?://[^/\s]+|null)$")]
"""As browsers send `Origin`: scheme, host and port, no path."""


class RateLimit(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """`[source.rate_limit]`: messages per second, and how many at once."""

    rate: Annotated[float, msgspec.Meta(gt=0)]
    burst: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Default: one second's worth (`rate`, at least 1)."""
    per_user: bool = False
    """One bucket per `userId` (else `anonymousId`) instead of one for the source."""
    over_limit: OverLimit = "refuse"
    """refuse: 429 with `Retry-After` (a pixel still gets its GIF); drop: 200, counted."""

    @property
    def size(self) -> int:
        """The bucket's size."""
        return self.burst if self.burst is not None else max(1, int(self.rate))


class Policies(
    msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True, omit_defaults=True
):
    """What a source does to its messages before they are stored, and whom it refuses."""

    ip: IpPolicy = "keep"
    """`context.ip`, wherever it came from: kept, truncated (IPv4 /24, IPv6 /48), dropped."""
    allowed_origins: list[Origin] = []
    """Empty: any origin. Else a request with another `Origin` header is refused (400)."""
    no_consent: NoConsent = "deliver"
    """A message without consent preferences: delivered to destinations that require
    consent (Segment's rule), or withheld from them."""
    fields: dict[FieldPath, FieldAction] = {}
    """JSON paths of personal fields, dropped or hashed (HMAC-SHA-256, `hash_secret`)."""
    hash_secret: Annotated[str, msgspec.Meta(min_length=16)] | None = None
    """The HMAC key of hashed fields; required when a field is hashed."""
    rate_limit: RateLimit | None = None


NO_POLICIES = Policies()


class PolicyError(ValueError):
    """Policies that cannot be used together; the message says why."""


def check(policies: Policies) -> None:
    """Refuse what the types cannot: a hashed field without a secret."""
    if policies.hash_secret is None and "hash" in policies.fields.values():
        raise PolicyError("a field is hashed, but hash_secret is not set")
