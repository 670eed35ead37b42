"""Answering a scrape: collectors and ready-made families as one, in the scraper's format.

The gateway's `GET /metrics` (`gateway.http.scrape`) and a worker's
(`gateway.worker.metrics`) both answer this way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aiohttp import web
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


class Families(Collector):
    """Collectors and ready-made families as one collector, for one scrape."""

    def __init__(self, collectors: Sequence[Collector], families: Sequence[Metric]) -> None:
        self._collectors = collectors
        self._families = families

    def collect(self) -> Iterable[Metric]:
        """Every collector's metrics, then the families."""
        for collector in self._collectors:
            yield from collector.collect()
        yield from self._families


def render(request: web.Request, collector: Collector) -> web.Response:
    """The exposition of `collector` in the format the scraper asks for."""
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encode(collector), headers={"Content-Type": content_type})
