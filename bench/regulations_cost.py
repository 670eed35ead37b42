"""What the regulations' check costs per message, and what 100,000 suppressed ids take in
memory: the figures in docs/regulations.md.

    python -m bench.regulations_cost

Times `Suppression.drops` (what `Ingest.message` asks of every validated message) with no
regulation, and with 100,000 suppressed user ids (and 1,000 not tracked) for a message of
a user who is not among them (the common case) and one who is; then the whole of
`Ingest.message` for a `track`, with and without the 100,000, and the handlers' filter of
the dropped entries (run only while some regulation is in force). Memory is measured with
tracemalloc while the table is built, against a `set` of the same ids. Best of many short
runs (`bench.metrics_cost`'s).
"""

from __future__ import annotations

import secrets
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime

from bench.metrics_cost import _best  # best of many interleaved runs, ns per call
from gateway.ingest.enrich import Arrival
from gateway.ingest.pipeline import Ingest
from gateway.ingest.sources import Sources
from gateway.ingest.suppression import Suppression, Table
from gateway.ingest.validate import validate
from gateway.settings import Settings
from gateway.store.regulation_records import member

IDS = 100_000


def _ids(count: int) -> list[str]:
    return [f"user-{secrets.token_hex(8)}" for _ in range(count)]


def main() -> None:
    """Print each case's cost per message, and the memory."""
    suppressed, no_track = _ids(IDS), _ids(1_000)
    members = [member(None, "USER_ID", i) for i in suppressed]
    quiet = [member(None, "USER_ID", i) for i in no_track]

    tracemalloc.start()
    table = Table(1, members, quiet)
    table_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    tracemalloc.start()
    as_set = set(suppressed)  # noqa: F841 - what a plain set of the ids would hold
    set_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    ids_bytes = sum(len(i) + 49 for i in suppressed)  # the strings themselves (compact ASCII)

    empty, full = Suppression(), Suppression()
    full.table = table
    arrival = Arrival(received_at=datetime.now(UTC))
    other = validate({"userId": "user-not-suppressed", "event": "E"}, "track", "$")
    hit = validate({"userId": suppressed[IDS // 2], "event": "E"}, "track", "$")
    settings = Settings.load(environ={}, redis_url="redis://localhost")
    plain, regulated = Ingest(settings, Sources(None)), Ingest(settings, Sources(None), full)
    source = plain.source("wk")
    message = {"userId": "user-not-suppressed", "event": "Viewed", "properties": {"n": 1}}
    entry = plain.message(dict(message), "track", arrival, source, "$")

    cases: dict[str, Callable[[], object]] = {
        "drops(), no regulation": lambda: empty.drops(other, "track", arrival, "s"),
        "drops(), 100,000 ids: not one": lambda: full.drops(other, "track", arrival, "s"),
        "drops(), 100,000 ids: suppressed": lambda: full.drops(hit, "track", arrival, "s"),
        "the handlers' filter, 1 entry": lambda: [e for e in (entry,) if e.stream],
        "Ingest.message, no regulation": lambda: plain.message(
            dict(message), "track", arrival, source, "$"
        ),
        "Ingest.message, 100,000 ids": lambda: regulated.message(
            dict(message), "track", arrival, source, "$"
        ),
    }
    for name, ns in _best(cases).items():
        print(f"{name:36} {ns / 1000:6.3f} µs")
    print(f"\nmemory of {IDS:,} suppressed ids (and 1,000 not tracked):")
    print(f"  the table (hashes + bitmap)        {table_bytes / 1e6:6.2f} MB")
    print(f"  a set of the ids (+ the strings)   {(set_bytes + ids_bytes) / 1e6:6.2f} MB")


if __name__ == "__main__":
    main()
