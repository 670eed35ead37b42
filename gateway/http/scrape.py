"""`GET /metrics`: the counted metrics, and the gauges read at scrape time.

Counted (see `gateway.ops.metrics`): from this process's registry, or with `--workers N`
from every process's multiprocess files, summed (see `gateway.ops.multiprocess`).

Read at scrape time, the same whichever process answers (see `gateway.store.gauges`): the
spool on disk, and from Redis the streams' lengths and each consumer group's lag, pending
entries, consumers and dead letters.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from gateway.constants import all_events_keys
from gateway.http.app_keys import METRICS, REDIS, SETTINGS
from gateway.ops.exposition import Families, render
from gateway.ops.multiprocess import current_dir
from gateway.store.gauges import REDIS_TIMEOUT, redis_families, spool_families


async def metrics(request: web.Request) -> web.StreamResponse:
    """`GET /metrics`."""
    app = request.app
    settings = app[SETTINGS]
    counted = app[METRICS]
    counted.push()  # this process's counts are exact; the others' at most a push behind
    directory = current_dir()
    source: Collector = (
        MultiProcessCollector(None, str(directory))  # type: ignore[no-untyped-call]
        if directory is not None
        else counted.registry
    )
    streams = all_events_keys(settings.partitions)
    families = spool_families(settings.data_dir / "spool")
    families += await redis_families(app[REDIS], streams, within=REDIS_TIMEOUT)
    return render(request, Families([source], families))
