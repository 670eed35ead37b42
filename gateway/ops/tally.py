"""What the hot path counts: plain integers in a `Tally`, cheap to add to.

A request adds to plain integers and dicts (about 0.1 µs each) rather than to
`prometheus_client` metrics, where with `--workers N` every increment is a locked write to
a memory-mapped file (1-2 µs). `gateway.ops.metrics.Metrics.push` moves what was counted
into the Prometheus metrics once a second.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from redis.exceptions import ResponseError

from gateway.errors import ApiError, Code

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, float("inf"),
)  # fmt: skip
"""Seconds from handing messages to the committer until they are durable."""
FLUSH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, float("inf"))
"""Entries per pipeline (or spool write)."""
OTHER_ROUTE = "other"
"""The route label of a path the gateway does not serve (404): paths are not labels."""
CLIENT_GONE = 499
"""The status label of a request whose client went away before its answer (nginx's 499):
not the gateway's error, so not a 5xx."""


class Buckets:
    """A histogram as plain counts per bucket (not cumulative), and their sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * len(bounds)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count `value` in its bucket."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def take(self) -> tuple[list[int], float]:
        """The counts and the sum since the last take; both start again from zero."""
        counts, total = self.counts, self.total
        self.counts = [0] * len(self.bounds)
        self.total = 0.0
        return counts, total


class Tally:
    """What this process counted since the last push: plain numbers, cheap to add to."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], dict[int, int]] = {}
        """(route, method) -> status -> answers."""
        self.accepted_redis = 0
        self.accepted_spool = 0
        self.duplicates = 0
        self.rejected: dict[str, int] = {}
        """The `reason` label (an `errors.Code`) -> messages refused."""
        self.redis_errors: dict[str, int] = {}
        self.policy_drops: dict[tuple[str, str], int] = {}
        """(source, policy) -> messages answered 200 but not stored (`over_limit = "drop"`)."""
        self.sdk_metrics = 0
        """Usage-metric series analytics.js posted to `/v1/m`."""
        self.dropped: dict[str, int] = {}
        """The reason (`suppressed`, `no_track`) -> messages a regulation dropped."""
        self.latency = Buckets(LATENCY_BUCKETS)
        self.flush_sizes = Buckets(FLUSH_BUCKETS)

    def route(self, route: str, method: str) -> dict[int, int]:
        """The answers of `method` on `route`, by status, for the caller to add to."""
        return self.requests.setdefault((route, method), {})

    def refused(self, error: ApiError, messages: int = 1) -> bool:
        """Count `messages` refused with `error`, by its code; whether it counted them.

        Not a 404 or 405 (a wrong route refuses no message), nor a 503 (the committer
        counts those, with the number of messages it could not store).
        """
        if error.status >= 500 or error.status in (404, 405):
            return False
        self.reject(error.code, messages)
        return True

    def refused_items(self, errors: Iterable[tuple[int, ApiError]]) -> None:
        """The refused items of a batch."""
        for _, error in errors:
            self.refused(error)

    def reject(self, reason: Code, messages: int) -> None:
        """`messages` refused for `reason`."""
        self.rejected[reason] = self.rejected.get(reason, 0) + messages

    def drop(self, reason: str) -> None:
        """One message a regulation dropped, for `reason`."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def policy_drop(self, source: str, policy: str, messages: int) -> None:
        """`messages` of `source` dropped, answered 200, by `policy`."""
        key = (source, policy)
        self.policy_drops[key] = self.policy_drops.get(key, 0) + messages

    def redis_error(self, exc: BaseException) -> None:
        """A Redis operation that failed with `exc`."""
        kind = _error_kind(exc)
        self.redis_errors[kind] = self.redis_errors.get(kind, 0) + 1


def _error_kind(exc: BaseException) -> str:
    kind = getattr(exc, "metric_kind", None)  # an error that names its own kind
    if isinstance(kind, str):
        return kind
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ResponseError):
        return "refused"  # Redis answered with an error (out of memory, read-only, ...)
    return "connection"
