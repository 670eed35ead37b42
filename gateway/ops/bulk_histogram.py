"""A Prometheus histogram that takes counts in bulk, through prometheus_client's public API.

`prometheus_client.Histogram` observes one value at a time: pushing a second's worth of
request latencies through it would cost as much as observing each request directly, which
is what the tally (`gateway.ops.tally`) avoids. This histogram adds a bucket's count in one
increment. Its values are `prometheus_client.values.ValueClass`, the storage `Histogram`
itself uses, under the same keys: with `--workers N` they go to the multiprocess files and
`MultiProcessCollector` sums them as it sums any histogram; in one process, `collect`
exposes them as `Histogram` would (buckets, count, sum, created).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, values
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

_CREATED = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() not in (
    "true",
    "1",
    "t",
)
"""Whether `_created` samples are exposed: prometheus_client's own switch, read as it does."""


class BulkHistogram(Collector):
    """An unlabelled histogram with fixed bucket bounds (the last one `+Inf`)."""

    def __init__(
        self, name: str, documentation: str, bounds: Sequence[float], registry: CollectorRegistry
    ) -> None:
        if not bounds or bounds[-1] != float("inf"):
            raise ValueError(f"the last bucket of {name} must be +Inf")
        self._name = name
        self._documentation = documentation
        self._les: list[str] = [floatToGoString(b) for b in bounds]  # type: ignore[no-untyped-call]
        value = values.ValueClass
        self._buckets = [
            value("histogram", name, f"{name}_bucket", ("le",), (le,), documentation)
            for le in self._les
        ]
        self._sum = value("histogram", name, f"{name}_sum", (), (), documentation)
        self._created = time.time()
        registry.register(self)

    def add(self, counts: Sequence[int], total: float) -> None:
        """Add `counts` (per bucket, not cumulative) and their sum `total`."""
        for bucket, count in zip(self._buckets, counts, strict=True):
            if count:
                bucket.inc(count)
        if total:
            self._sum.inc(total)

    def describe(self) -> Iterable[Metric]:
        """The family without samples: the registry checks its names against the others'."""
        return [HistogramMetricFamily(self._name, self._documentation)]

    def collect(self) -> Iterable[Metric]:
        """The histogram as this process counted it (cumulative buckets, count, sum)."""
        family = HistogramMetricFamily(self._name, self._documentation, labels=[])
        cumulative = 0.0
        buckets = []
        for le, bucket in zip(self._les, self._buckets, strict=True):
            cumulative += bucket.get()
            buckets.append((le, cumulative))
        family.add_metric([], buckets, self._sum.get())
        if _CREATED:
            family.add_sample(f"{self._name}_created", {}, self._created)
        return [family]
