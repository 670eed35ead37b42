"""The application factory: the routes, and the resources they share, each started and
closed by its own cleanup context."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from gateway.constants import all_events_keys
from gateway.control import inspector_api, listener
from gateway.control.app_keys import ACCESS_TTL, LIVE, LOOKUP, SUPPRESSION, TAIL
from gateway.control.app_keys import COMMITTER as INSPECTOR_COMMITTER
from gateway.control.app_keys import INGEST as INSPECTOR_INGEST
from gateway.control.inspector_tail import Tail
from gateway.control.live import LiveSources
from gateway.control.lookup import Lookup
from gateway.control.store import Store
from gateway.control.suppression_live import LiveSuppression
from gateway.http import pixel, routes, scrape
from gateway.http.address_budget import AddressBudget
from gateway.http.app_keys import (
    ADDRESS_BUDGET,
    BODY_LIMITS,
    COMMITTER,
    FIRST_CONTACT,
    INGEST,
    LIMITER,
    METRICS,
    REDIS,
    REFUSALS,
    SETTINGS,
    SPOOL,
    WRITER,
)
from gateway.http.body_limits import BodyLimits
from gateway.ingest.pipeline import Ingest
from gateway.ingest.plan_upkeep import PlanUpkeep
from gateway.ingest.sources import Sources
from gateway.ingest.suppression import Suppression
from gateway.ops import tasks
from gateway.ops.metrics import Metrics
from gateway.settings import Settings
from gateway.store import partitions, redis_client, redis_url
from gateway.store.cluster_writer import ClusterWriter
from gateway.store.committer import Committer
from gateway.store.first_contact import FirstContact
from gateway.store.ratelimit import RateLimiter
from gateway.store.refusals import Refusals
from gateway.store.regulations import RegulationStore
from gateway.store.replay import Replayer
from gateway.store.replicas import replica_wait
from gateway.store.retention import Retention, Trimmer
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
    app[REFUSALS] = Refusals()
    if sources is None:  # not `or`: a Sources with no writeKeys is empty, yet not open
        sources = Sources.from_file(settings.sources)
    ingest = app[INGEST] = Ingest(settings, sources, Suppression(app[METRICS].tally))
    live = app[LIVE] = LiveSources(settings.sources, sources)
    live.listeners.append(lambda table: setattr(ingest, "sources", table))  # swapped whole
    app[BODY_LIMITS] = BodyLimits(
        settings.body_timeout, settings.body_min_rate, settings.body_memory, settings.retry_after
    )
    app[ADDRESS_BUDGET] = AddressBudget(
        settings.address_rate, settings.address_burst, settings.address_table
    )
    # One context a resource, each closed after those started after it, so a failure to
    # start one (an unusable spool directory) still closes those started before it.
    app.cleanup_ctx.append(_metrics)  # first in, last out: its last push sees the last flush
    app.cleanup_ctx.append(_writer)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_live)
    app.cleanup_ctx.append(_suppression)
    app.cleanup_ctx.append(_spool)
    app.cleanup_ctx.append(_replayer)
    app.cleanup_ctx.append(_committer)
    app.cleanup_ctx.append(_limiter)
    app.cleanup_ctx.append(_refusals)
    app.cleanup_ctx.append(_plans)
    app.cleanup_ctx.append(_upkeep)
    routes.add_all(app, metrics=settings.public_metrics)
    return app


def create_admin_app(public: web.Application) -> web.Application:
    """The admin listener's app beside a started `public` app, sharing its objects (the
    sources table, the counts, Redis). `settings.admin_token` must be set."""
    settings = public[SETTINGS]
    if settings.admin_token is None:
        raise ValueError("create_admin_app needs settings.admin_token (serve makes one)")
    metrics = listener.metrics_family({"/metrics": {"GET": scrape.metrics}})
    admin = listener.create(settings.admin_token, public[LIVE], [metrics])
    admin[SETTINGS] = settings
    admin[METRICS] = public[METRICS]
    admin[REDIS] = public[REDIS]
    admin[SUPPRESSION] = public[SUPPRESSION]
    admin[ACCESS_TTL] = settings.access_ttl
    admin[LOOKUP] = Lookup(
        public[REDIS], all_events_keys(settings.partitions), settings.dedupe_window, public[LIVE]
    )
    admin[TAIL] = Tail(public[REDIS], [*all_events_keys(settings.partitions), *Tail.OTHERS])
    admin[INSPECTOR_INGEST] = public[INGEST]
    admin[INSPECTOR_COMMITTER] = public[COMMITTER]
    admin.on_shutdown.append(inspector_api.shutdown)
    return admin


async def _metrics(app: web.Application) -> AsyncIterator[None]:
    """Push the counted metrics while the app runs (see `gateway.ops.metrics`)."""
    async with app[METRICS].pushing():
        yield


async def _writer(app: web.Application) -> AsyncIterator[None]:
    """The hot path's writer, of one node or a cluster (see `gateway.store.writers`)."""
    settings = app[SETTINGS]
    assert settings.redis_url is not None
    wait = replica_wait(
        settings.wait_replicas, settings.wait_replicas_timeout, settings.wait_replicas_fsync
    )
    writer, _ = await open_writer(
        settings.redis_url, settings.dedupe_window, settings.redis_timeout, wait
    )
    try:
        app[WRITER] = writer
        yield
    finally:
        await writer.close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    """A redis-py client, for the health checks and the replay's probes."""
    settings = app[SETTINGS]
    assert settings.redis_url is not None
    # A cluster client on a cluster; while that is not known (the node did not answer),
    # a client of that node alone.
    cluster = isinstance(app[WRITER], ClusterWriter)
    redis = redis_client.connect(
        redis_url.parse(settings.redis_url).url, settings.redis_timeout, cluster=cluster
    )
    first_contact = FirstContact(redis, settings.redis_url, settings.redis_timeout)
    try:
        await first_contact.start()  # an ERROR, repeated, while Redis has never answered
        app[REDIS] = redis
        app[FIRST_CONTACT] = first_contact
        yield
    finally:
        await first_contact.stop()
        await redis.aclose()


async def _live(app: web.Application) -> AsyncIterator[None]:
    """The sources table, kept current (see `gateway.control.live`)."""
    live = app[LIVE]
    await live.start(Store(app[REDIS]), app[SETTINGS].redis_timeout)
    try:
        yield
    finally:
        await live.stop()


async def _suppression(app: web.Application) -> AsyncIterator[None]:
    """The suppressed subjects, kept current (see `gateway.control.suppression_live`)."""
    live = LiveSuppression(app[INGEST].suppression, RegulationStore(app[REDIS]))
    await live.start(app[SETTINGS].redis_timeout)
    app[SUPPRESSION] = live
    try:
        yield
    finally:
        await live.stop()


async def _spool(app: web.Application) -> AsyncIterator[None]:
    """This process's spool under `<data-dir>/spool/` (see `gateway.store.spool`)."""
    settings = app[SETTINGS]
    spool = Spool.open(
        settings.data_dir / "spool",
        settings.spool_max_bytes,
        settings.spool_segment_bytes,
        settings.spool_fsync,
    )
    try:
        if not spool.empty:
            log.info(
                "spool %s holds %d bytes to replay",
                spool.directory,
                spool.bytes,
                extra={"event": "spool_pending", "bytes": spool.bytes},
            )
        spool.start()
        app[SPOOL] = spool
        yield
    finally:
        await spool.close()


async def _replayer(app: web.Application) -> AsyncIterator[None]:
    """The replay of the spool into Redis, in the background (see `gateway.store.replay`)."""
    replayer = Replayer(app[REDIS], app[WRITER], app[SPOOL], app[SETTINGS].redis_timeout)
    replayer.start()
    app[METRICS].replayed = lambda: replayer.replayed
    try:
        yield
    finally:
        await replayer.stop()


async def _committer(app: web.Application) -> AsyncIterator[None]:
    """The group commit in front of Redis and the spool (see `gateway.store.committer`)."""
    committer = Committer(
        app[WRITER],
        app[SPOOL],
        app[SETTINGS].redis_timeout,
        app[METRICS].tally,
        ring=app[INGEST].ring,
    )
    app[COMMITTER] = committer
    try:
        yield
    finally:
        await committer.close()  # flush what is buffered: to Redis, else to the spool


async def _plans(app: web.Application) -> AsyncIterator[None]:
    """Tracking plans' counters and trim (see `gateway.ingest.plan_upkeep`)."""
    upkeep = PlanUpkeep(app[INGEST].plan_counts, app[METRICS].registry)
    async with upkeep.running(app[REDIS]):
        yield


async def _limiter(app: web.Application) -> AsyncIterator[None]:
    """The rate limiter, on its own connection (see `gateway.store.ratelimit`)."""
    settings = app[SETTINGS]
    assert settings.redis_url is not None
    app[LIMITER] = RateLimiter(settings.redis_url, settings.redis_timeout, settings.workers)
    try:
        yield
    finally:
        await app[LIMITER].close()


async def _refusals(app: web.Application) -> AsyncIterator[None]:
    """Refused messages written to Redis once a second (see `gateway.store.refusals`), and
    the live inspector's ring while a page is open (`gateway.store.inspector_ring`)."""
    async with (
        tasks.running(app[REFUSALS].run(app[REDIS])),
        tasks.running(app[INGEST].ring.run(app[REDIS])),
    ):
        yield


async def _upkeep(app: web.Application) -> AsyncIterator[None]:
    """In the background: record the partition count for the workers, and trim the streams
    when this process holds the lease (see `gateway.store.partitions`, `.retention`)."""
    settings = app[SETTINGS]
    retention = Retention(settings.retention_acked, settings.retention_max_age)
    owner = f"gateway-{socket.gethostname()}-{os.getpid()}"
    trimmer = Trimmer(app[REDIS], retention, settings.partitions, owner)
    async with (
        tasks.running(partitions.keep_recorded(app[REDIS], settings.partitions)),
        tasks.running(trimmer.run()),
    ):
        yield
