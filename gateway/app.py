"""The application factory: the routes, and the resources they share."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from gateway.http import pixel, routes
from gateway.http.app_keys import COMMITTER, INGEST, LIMITER, METRICS, REDIS, SETTINGS
from gateway.ingest.pipeline import Ingest
from gateway.ingest.sources import Sources
from gateway.ops.metrics import Metrics
from gateway.settings import Settings
from gateway.store import redis_client, redis_url
from gateway.store.committer import Committer
from gateway.store.ratelimit import RateLimiter
from gateway.store.replay import Replayer
from gateway.store.spool import Spool
from gateway.store.writers import open_writer

log = logging.getLogger(__name__)

RUNNER_OPTIONS: dict[str, Any] = {
    "auto_decompress": False,
    "access_log": None,
    "max_line_size": pixel.MAX_REQUEST_LINE,
}
"""Options every runner of the app must use: the gateway inflates bodies itself, within
its limits (see `gateway.http.body`), logs no line per request, and reads pixel URLs up to the
message size limit."""


def create_app(settings: Settings, sources: Sources | None = None) -> web.Application:
    """The gateway as an aiohttp application. `settings.redis_url` must be set."""
    if settings.redis_url is None:
        raise ValueError("create_app needs settings.redis_url (serve starts an embedded one)")
    app = web.Application(client_max_size=settings.max_batch_bytes)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    if sources is None:  # not `or`: a Sources with no writeKeys is empty, yet not open
        sources = Sources.from_file(settings.sources)
    app[INGEST] = Ingest(settings, sources)
    app.cleanup_ctx.append(_metrics)  # first in, last out: its last push sees the last flush
    app.cleanup_ctx.append(_storage)
    app.cleanup_ctx.append(_limiter)
    routes.add_routes(app, routes.table())
    return app


async def _metrics(app: web.Application) -> AsyncIterator[None]:
    """Push the counted metrics while the app runs (see `gateway.ops.metrics`)."""
    async with app[METRICS].pushing():
        yield


async def _storage(app: web.Application) -> AsyncIterator[None]:
    """Redis, the spool, the committer in front of both, and the replay between them."""
    settings = app[SETTINGS]
    assert settings.redis_url is not None
    writer, cluster = await open_writer(
        settings.redis_url, settings.dedupe_window, settings.redis_timeout
    )
    # A cluster client on a cluster; while that is not known (the node did not answer),
    # a client of that node alone, for the health checks and the replay's probes.
    redis = redis_client.connect(
        redis_url.parse(settings.redis_url).url, settings.redis_timeout, cluster=bool(cluster)
    )
    try:
        await redis.ping()
    except Exception as exc:
        log.warning(
            "Redis is not reachable yet (%s); spooling until it is",
            exc,
            extra={"event": "redis_down"},
        )
    spool = Spool.open(
        settings.data_dir / "spool",
        settings.spool_max_bytes,
        settings.spool_segment_bytes,
        settings.spool_fsync,
    )
    if not spool.empty:
        log.info(
            "spool %s holds %d bytes to replay",
            spool.directory,
            spool.bytes,
            extra={"event": "spool_pending", "bytes": spool.bytes},
        )
    spool.start()
    replayer = Replayer(redis, writer, spool, settings.redis_timeout)
    replayer.start()
    metrics = app[METRICS]
    metrics.replayed = lambda: replayer.replayed
    app[REDIS] = redis
    app[COMMITTER] = Committer(writer, spool, settings.redis_timeout, metrics.tally)
    try:
        yield
    finally:
        await app[COMMITTER].close()  # flush what is buffered: to Redis, else to the spool
        await replayer.stop()
        await spool.close()
        await writer.close()
        await redis.aclose()


async def _limiter(app: web.Application) -> AsyncIterator[None]:
    """The rate limiter, on its own connection (see `gateway.store.ratelimit`)."""
    settings = app[SETTINGS]
    assert settings.redis_url is not None
    app[LIMITER] = RateLimiter(settings.redis_url, settings.redis_timeout, settings.workers)
    try:
        yield
    finally:
        await app[LIMITER].close()
