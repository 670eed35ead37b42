"""A budget of requests per client address, kept in this process's memory.

WriteKeys are public, so a key is no defence against one client sending more than any
browser or SDK does. Each address has a token bucket: `burst` requests at once, refilled at
`rate` a second; past it, `429` with `Retry-After`. Everything is in memory (no Redis round
trip on the request's path); with `--workers N` each process keeps its own table, and the
kernel spreads one client's connections over them, so an address may get up to N times the
rate (see docs/security.md).

The table holds at most `size` addresses: when full, the oldest entry is forgotten (that
address starts again with a full bucket), so memory is bounded whatever the number of
addresses. An IPv6 client is counted by its /64 network, which one host usually holds whole
(parsing an IPv6 address costs about 17 µs: the recent ones are cached).
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections.abc import Callable, Sequence

from aiohttp import web

from gateway.errors import ApiError
from gateway.http import auth
from gateway.settings import IPNetwork


class AddressBudget:
    """Token buckets by client address, at most `size` of them; `rate` 0 allows all."""

    __slots__ = ("_buckets", "_burst", "_clock", "_rate", "_size")

    def __init__(
        self, rate: float, burst: int, size: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._size = size
        self._buckets: dict[str, list[float]] = {}
        """Address -> [tokens, when they were counted]."""
        self._clock = clock

    @property
    def rate(self) -> float:
        """Requests a second an address may make, past its burst."""
        return self._rate

    @property
    def enabled(self) -> bool:
        """Whether any request can be refused."""
        return self._rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, address: str | None) -> float:
        """Spend one request of `address`: 0.0 when allowed, else seconds until it would be."""
        if address is None or self._rate <= 0:
            return 0.0
        if ":" in address:
            address = _network(address)
        now = self._clock()
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self._size:
                # Insertion order: the first key is the oldest address first seen.
                del self._buckets[next(iter(self._buckets))]
            self._buckets[address] = [self._burst - 1.0, now]
            return 0.0
        tokens = min(self._burst, bucket[0] + (now - bucket[1]) * self._rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self._rate


@functools.lru_cache(maxsize=4096)
def _network(address: str) -> str:
    """An IPv6 address's /64 network (an IPv4-mapped one: its IPv4 address)."""
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return ip.exploded[:19]


Admit = Callable[[web.Request], None]
"""Raises the 429 of a request over its address's budget."""


def admission(budget: AddressBudget, trusted: Sequence[IPNetwork]) -> Admit | None:
    """The check of each request against `budget`, by its client address (`trusted`
    proxies' `X-Forwarded-For` believed, as everywhere); None when nothing is limited."""
    if not budget.enabled:
        return None

    def admit(request: web.Request) -> None:
        wait = budget.take(auth.client_ip(request, trusted))
        if wait:
            raise ApiError(
                429,
                "Too many requests from this address",
                f"more than {budget.rate:g} requests a second; "
                f"try again in {max(wait, 0.01):.2f} s",
                {"Retry-After": str(math.ceil(wait))},
            )

    return admit
