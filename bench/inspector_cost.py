"""What the live inspector costs the hot path with no page open: the figure in
docs/inspector.md.

    python -m bench.inspector_cost

With no page open, the hot path asks `Ring.watching` (False) only where an outcome that
writes nothing was already decided: once per flush (`left_out and ring.watching`, the
duplicates: `left_out` is 0 in the usual flush), once per spooled flush, once per
suppressed message, once per request over a rate limit. Timed here against validating and
enriching one `track` message (`Ingest.single`), for scale. Best of many short runs
(`bench.metrics_cost`'s).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from bench.metrics_cost import _best  # best of many interleaved runs, ns per call
from gateway.ingest.enrich import Arrival
from gateway.ingest.pipeline import Ingest
from gateway.ingest.sources import Sources
from gateway.settings import Settings
from gateway.store.inspector_ring import Ring

MESSAGE = msgspec.json.encode(
    {
        "userId": "u-1",
        "event": "Order Completed",
        "messageId": "3f9a4c2e-6b1d-4b43-9d25-0b4c7f8e7a10",
        "properties": {"total": 42.5, "currency": "EUR", "items": 3},
    }
)


def main() -> None:
    """Print each case's cost."""
    ring = Ring()
    left_out = 0
    settings = Settings.load(environ={}, redis_url="redis://127.0.0.1:6379")
    ingest = Ingest(settings, Sources(None))
    arrival = Arrival(received_at=datetime.now(UTC), route="/v1/track")
    cases: dict[str, Callable[[], object]] = {
        "nothing (the timing's own cost)": lambda: None,
        "a flush's check (no duplicates)": lambda: left_out and ring.watching,
        "the attribute check itself": lambda: ring.watching,
        "Ingest.single of one track message": lambda: ingest.single(MESSAGE, "track", arrival),
    }
    for name, ns in _best(cases).items():
        print(f"{name:40} {ns / 1000:8.3f} µs")


if __name__ == "__main__":
    main()
