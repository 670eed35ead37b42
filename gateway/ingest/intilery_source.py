"""The `[source.intilery]` table of the sources file: which Intilery account a source is,
and which `auth-token`s may send to it::

    [[source]]
    id = "shop"
    write_keys = []
    [source.intilery]
    client = "acme"                  # the path's {clientId}
    account = "shop"                 # the path's {accountId}
    tokens = ["tok_all_brands"]      # allowed for every brand of the account
    brands = { SHOP = ["tok_shop"], OUTLET = ["tok_outlet"] }   # one brand only
    rate = 100                       # requests per second per token (the default)
    burst = 500                      # requests at once per token (the default)
"""

from __future__ import annotations

from typing import Annotated

import msgspec

_Name = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[^/\s]+$")]
"""A path segment: non-empty, no slash, no whitespace."""
_Token = Annotated[str, msgspec.Meta(min_length=1)]

DEFAULT_RATE = 100.0
"""Intilery's documented limit: 100 requests per second per token..."""
DEFAULT_BURST = 500
"""... with bursts up to 500."""


class Intilery(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One Intilery account (`client`/`account` of the path) and its tokens."""

    client: _Name
    account: _Name
    tokens: list[_Token] = []
    """Tokens with rights on every brand of the account."""
    brands: dict[_Name, list[_Token]] = {}
    """Brand id (as in the path, case-sensitive) -> tokens with rights on that brand only."""
    rate: Annotated[float, msgspec.Meta(gt=0)] = DEFAULT_RATE
    burst: Annotated[int, msgspec.Meta(ge=1)] = DEFAULT_BURST

    @property
    def account_key(self) -> tuple[str, str]:
        """`(client, account)`, lower-cased: the docs say both are lower case."""
        return self.client.lower(), self.account.lower()

    def allows(self, token: str, brand: str) -> bool:
        """Whether `token` has rights on `brand` of this account."""
        return token in self.tokens or token in self.brands.get(brand, ())
