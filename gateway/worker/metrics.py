"""`gateway worker --metrics-port`: the worker's own `/metrics`.

The counts are the consumer's `Stats`, read when scraped: nothing is added to the
delivery path. Each worker is one process with its own port, so Prometheus adds the
workers of a group up itself (`sum by (group)`). The group's lag, pending entries and
dead letters are read from Redis at scrape time (`gateway.store.gauges`, as the gateway's
`/metrics` does too): every worker of a group reports the same values, so take
`max by (group, stream)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence

from aiohttp import web
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.ops.exposition import Families, render
from gateway.store.gauges import REDIS_TIMEOUT, redis_families
from gateway.store.redis_client import AnyRedis
from gateway.worker.options import Stats

COUNTERS = (
    ("delivered", "Messages every destination accepted (acknowledged)."),
    ("retried", "Delivery attempts that failed and were left pending for a retry."),
    ("dead_lettered", "Messages moved to the group's dead-letter stream."),
    ("batches", "Batches handed to the destinations."),
    ("reclaimed", "Entries reclaimed after reclaim-idle (a retry, or a dead worker's batch)."),
)
_FIELDS = {"retried": "failed", "dead_lettered": "dead"}


class StatsCollector(Collector):
    """A consumer's `Stats` as counters labelled with its group."""

    def __init__(self, stats: Stats, group: str) -> None:
        self._stats = stats
        self._group = group

    def collect(self) -> Iterable[Metric]:
        """`gateway_worker_<name>_total{group}` for each count."""
        for name, documentation in COUNTERS:
            family = CounterMetricFamily(f"gateway_worker_{name}", documentation, labels=["group"])
            family.add_metric([self._group], getattr(self._stats, _FIELDS.get(name, name)))
            yield family
        if not self._stats.withheld:  # only workers with consent-requiring destinations
            return
        withheld = CounterMetricFamily(
            "gateway_worker_withheld",
            "Messages not sent to a destination for want of a consent category.",
            labels=["group", "destination", "category"],
        )
        for (destination, category), count in list(self._stats.withheld.items()):
            withheld.add_metric([self._group, destination, category], count)
        yield withheld


def app(stats: Stats, group: str, redis: AnyRedis, streams: Sequence[str]) -> web.Application:
    """An application answering `GET /metrics` for one consumer."""
    collector = StatsCollector(stats, group)

    async def metrics(request: web.Request) -> web.StreamResponse:
        families = await redis_families(redis, streams, within=REDIS_TIMEOUT, group=group)
        return render(request, Families([collector], families))

    application = web.Application()
    application.router.add_get("/metrics", metrics)
    return application


@contextlib.asynccontextmanager
async def serving(
    host: str, port: int, stats: Stats, group: str, redis: AnyRedis, streams: Sequence[str]
) -> AsyncIterator[web.AppRunner]:
    """Serve the worker's `/metrics` on `host:port` while inside."""
    runner = web.AppRunner(app(stats, group, redis, streams), access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:  # not Redis's fault: say which flag to change
            raise ValueError(
                f"--metrics-port {port} on {host}: {exc.strerror or exc}; choose another port"
            ) from None
        yield runner
    finally:
        await runner.cleanup()
