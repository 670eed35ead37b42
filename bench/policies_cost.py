"""What each source policy costs per message: the figures in docs/policies.md.

    python -m bench.policies_cost

Times decoding and ingesting (validate, enrich, policies, encode: `Ingest.message`) one
browser `track` message of about 1 KB, for a source with no policy, with each policy alone,
and with all of them; the difference to "none" is the policy's cost. Then the rate limit,
which costs per request: 64 requests at a time, each a task as aiohttp makes it, with and
without a check (`RateLimiter` against the embedded server), for a limit fast enough to be
spent from leases and for one that is asked of Redis (the checks of one event-loop turn
share one script call). Best of many short interleaved runs, in CPU time of this process
(`time.process_time`): on a machine shared with other work, wall time mostly measures them.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import timeit
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from gateway.ingest.enrich import Arrival
from gateway.ingest.pipeline import Ingest
from gateway.ingest.sources import Source, Sources
from gateway.ops.embedded import RedisProcess
from gateway.settings import Settings
from gateway.store.ratelimit import Limit, RateLimiter

ORIGIN = "https://shop.example"
MESSAGE = msgspec.json.encode(
    {
        "type": "track",
        "event": "Order Completed",
        "userId": "user-8812",
        "anonymousId": "2c1f7a4e-52a3-4f0c-9d1e-5e3f0b2a9c11",
        "messageId": "ajs-next-1712345678901-2f6c8d3e-1a2b-4c5d-8e9f-0a1b2c3d4e5f",
        "timestamp": "2024-04-05T10:11:12.345Z",
        "sentAt": "2024-04-05T10:11:12.400Z",
        "properties": {
            "order_id": "50314b8e9bcf000000000000",
            "total": 27.5,
            "currency": "EUR",
            "card": "4111111111111111",
            "products": [{"sku": "45790-32", "name": "Monopoly", "price": 19}],
        },
        "context": {
            "library": {"name": "analytics.js", "version": "next-1.70.0"},
            "page": {"path": "/checkout", "url": f"{ORIGIN}/checkout", "title": "Checkout"},
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0",
            "locale": "en-GB",
            "traits": {"email": "ada@example.com"},
        },
    }
)
ALL: dict[str, object] = {
    "ip": "truncate",
    "allowed_origins": [ORIGIN, "https://www.shop.example"],
    "no_consent": "withhold",
    "fields": {
        "traits.email": "hash",
        "context.traits.email": "hash",
        "properties.card": "drop",
    },
    "hash_secret": "bench-secret-0123456789",
}
CASES: dict[str, dict[str, object]] = {
    "none": {},
    "ip = truncate": {"ip": "truncate"},
    "ip = drop": {"ip": "drop"},
    "allowed_origins (2)": {"allowed_origins": ALL["allowed_origins"]},
    "no_consent = withhold": {"no_consent": "withhold"},
    "fields: 2 hashed, 1 dropped": {"fields": ALL["fields"], "hash_secret": ALL["hash_secret"]},
    "fields: 3 paths matching nothing": {"fields": {"a.b": "drop", "c.d": "drop", "e": "drop"}},
    "all of the above": ALL,
}


RUNS = 30
CALLS = 20_000


def _best(cases: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Nanoseconds of CPU per call of each case, the best of `RUNS` interleaved runs."""
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(RUNS):
        for name, case in cases.items():
            spent = timeit.timeit(case, number=CALLS, timer=time.process_time)
            best[name] = min(best[name], spent / CALLS * 1e9)
    return best


def main() -> None:
    """Print each case's cost per message, and its difference to `none`."""
    settings = Settings.load(environ={})
    arrival = Arrival(received_at=datetime.now(UTC), ip="203.0.113.45", browser=True, origin=ORIGIN)
    decode = msgspec.json.Decoder(dict).decode
    cases: dict[str, Callable[[], object]] = {}
    for name, policies in CASES.items():
        source = msgspec.convert({"id": "web", "write_keys": ["wk"], **policies}, Source)
        ingest = Ingest(settings, Sources([source]))

        def case(ingest: Ingest = ingest, source: Source = source) -> object:
            return ingest.message(decode(MESSAGE), "track", arrival, source, "$")

        cases[name] = case
    best = _best(cases)
    for name, ns in best.items():
        extra = (ns - best["none"]) / 1000
        print(f"{name:34} {ns / 1000:6.2f} µs/message  ({extra:+.2f} µs)")


async def _rate_limit(url: str, requests: int = 20_000, in_flight: int = 64) -> None:
    limiter = RateLimiter(url, timeout=2.0, processes=1)
    # Never reached: a fast limit is spent from leases; a slow one asks Redis every turn.
    limits = {
        "leased (10^9/s)": Limit(rate=1e9, burst=10**9),
        "asked each turn (100/s)": Limit(rate=100, burst=10**9),
    }
    for name, limit in limits.items():
        await limiter.check(name, limit)

    def checking(name: str, limit: Limit) -> Callable[[], Awaitable[object]]:
        return lambda: limiter.check(name, limit)

    async def bare() -> None:
        """A request's task without a check."""

    cases = {"without": bare} | {name: checking(name, limit) for name, limit in limits.items()}
    best = dict.fromkeys(cases, float("inf"))
    try:
        for _ in range(3):
            for name, request in cases.items():
                cpu, done = time.process_time(), 0
                while done < requests:
                    await asyncio.gather(*(request() for _ in range(in_flight)))
                    done += in_flight
                best[name] = min(best[name], (time.process_time() - cpu) / done * 1e6)
    finally:
        await limiter.close()
    for name in limits:
        label = f"rate_limit, {name}"
        print(f"{label:34} {best[name] - best['without']:+6.2f} µs CPU/request")


def rate_limit() -> None:
    """Print the rate limit's CPU per request, against an embedded server."""
    with tempfile.TemporaryDirectory() as directory:
        server = RedisProcess(Path(directory))
        server.start()
        try:
            asyncio.run(_rate_limit(server.url))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
    rate_limit()
