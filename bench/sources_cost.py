"""What looking up a key costs per request with a sources table of 10,000 keys: the figure
in docs/admin.md.

    python -m bench.sources_cost

Times `Sources.resolve` (every key hashed with SHA-256, one dict lookup: file and admin API
keys alike) against the lookup it replaced (the key itself in a dict), for a known key and
an unknown one, with 10,000 keys from the file or the API. Best of many short runs
(`bench.metrics_cost`'s).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from bench.metrics_cost import _best  # best of many interleaved runs, ns per call
from gateway.ingest.sources import Key, Source, Sources, key_digest

KEYS = 10_000


def main() -> None:
    """Print each case's cost per request."""
    keys = ["wk_" + secrets.token_urlsafe(24) for _ in range(KEYS)]
    per_source = 10
    file_sources = [
        Source(id=f"s{n}", write_keys=keys[n * per_source : (n + 1) * per_source])
        for n in range(KEYS // per_source)
    ]
    from_file = Sources(file_sources)
    api_sources = [Source(id=f"s{n}", write_keys=[]) for n in range(KEYS // per_source)]
    from_api = Sources(
        api_sources,
        [
            Key(kind="write_key", digest=key_digest(k), source=f"s{i // per_source}")
            for i, k in enumerate(keys)
        ],
    )
    before = {k: s for s in file_sources for k in s.write_keys}

    def old(key: str) -> Source | None:  # the lookup before the control plane
        source = before.get(key)
        return source if source is not None and source.enabled else None

    known, unknown = keys[KEYS // 2], "wk_" + secrets.token_urlsafe(24)
    cases: dict[str, Callable[[], object]] = {
        "before: key in a dict, known": lambda: old(known),
        "before: key in a dict, unknown": lambda: old(unknown),
        "now, file keys: known": lambda: from_file.resolve(known),
        "now, file keys: unknown": lambda: from_file.resolve(unknown),
        "now, API keys: known": lambda: from_api.resolve(known),
        "now, API keys: unknown": lambda: from_api.resolve(unknown),
    }
    for name, ns in _best(cases).items():
        print(f"{name:34} {ns / 1000:6.3f} µs")


if __name__ == "__main__":
    main()
