"""What the metrics and request ids cost per request: the figures in docs/metrics.md.

    python -m bench.metrics_cost          # in memory, as with --workers 1
    python -m bench.metrics_cost --mp     # prometheus_client's multiprocess mode

Times the wrapper every route's handler runs in (`gateway.http.observe`) around a handler that
does nothing, the committer's per-request and per-flush tallies, and, for comparison,
the same counts made straight with `prometheus_client`. Best of many short runs, so that
other work on the machine shows as little as it can.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import timeit
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

RUNS = 40
CALLS = 20_000


def _best(cases: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Nanoseconds per call of each case, the best of `RUNS` interleaved runs."""
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(RUNS):
        for name, case in cases.items():
            best[name] = min(best[name], timeit.timeit(case, number=CALLS) / CALLS * 1e9)
    return best


def _run(awaitable: Awaitable[Any]) -> Any:
    """Run a coroutine that never suspends, without an event loop's own cost."""
    coroutine = cast(Coroutine[Any, Any, Any], awaitable)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the coroutine suspended")


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mp", action="store_true", help="prometheus_client multiprocess mode")
    args = parser.parse_args()
    if args.mp:  # before prometheus_client is imported: it picks its storage then
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bench-metrics-")

    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from gateway.http import observe
    from gateway.ops.metrics import Metrics
    from gateway.ops.tally import LATENCY_BUCKETS

    metrics = Metrics()
    tally = metrics.tally
    answer = web.Response(body=b'{"success": true}', content_type="application/json")

    async def handler(request: web.Request) -> web.StreamResponse:
        return answer

    wrapped = observe.wrap(handler, tally, "/v1/track")
    plain_request = make_mocked_request("POST", "/v1/track")
    with_id = make_mocked_request("POST", "/v1/track", headers={"X-Request-Id": "a" * 36})

    def committer_request() -> None:
        start = time.perf_counter()
        tally.latency.observe(time.perf_counter() - start)

    def committer_flush() -> None:
        tally.flush_sizes.observe(37)
        tally.accepted_redis += 37

    registry = CollectorRegistry()
    counter = Counter("bench_requests", "", ["route", "status"], registry=registry)
    child = counter.labels("/v1/track", "200")
    histogram = Histogram("bench_seconds", "", buckets=LATENCY_BUCKETS, registry=registry)

    results = _best(
        {
            "handler alone": lambda: _run(handler(plain_request)),
            "wrapped, new id": lambda: _run(wrapped(plain_request)),
            "wrapped, client's id": lambda: _run(wrapped(with_id)),
            "committer, per request": committer_request,
            "committer, per flush": committer_flush,
            "prometheus Counter child .inc()": child.inc,
            "prometheus .labels(...).inc()": lambda: counter.labels("/v1/track", "200").inc(),
            "prometheus Histogram.observe()": lambda: histogram.observe(0.003),
        }
    )
    mode = "multiprocess" if args.mp else "in memory"
    print(f"| what ({mode}) | ns per call |")
    print("|---|---|")
    for name, nanoseconds in results.items():
        print(f"| {name} | {nanoseconds:.0f} |")
    added = results["wrapped, new id"] - results["handler alone"]
    print(f"\nthe wrapper adds {added:.0f} ns per request")


if __name__ == "__main__":
    main()
