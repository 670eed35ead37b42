"""HTTP handlers of the event routes: read the body, ingest it, commit, answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from gateway.errors import partial, success, unavailable
from gateway.http import auth
from gateway.http.app_keys import COMMITTER, INGEST, METRICS
from gateway.http.body import read_body
from gateway.ingest.enrich import Arrival
from gateway.ops import timestamps
from gateway.store.committer import Unavailable
from gateway.store.entry import Entry

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def arrival_of(request: web.Request) -> Arrival:
    """What the request tells about the messages in it."""
    settings = request.app[INGEST].settings
    received_at, received_iso = timestamps.received()
    return Arrival(
        received_at=received_at,
        received_iso=received_iso,
        ip=auth.client_ip(request, settings.trusted_proxies),
        browser="Origin" in request.headers,
        basic_key=auth.basic_username(request),
        query_key=auth.query_key(request),
    )


async def commit(request: web.Request, entries: Sequence[Entry]) -> None:
    """Make `entries` durable or answer 503."""
    try:
        await request.app[COMMITTER].commit(entries)
    except Unavailable as exc:
        settings = request.app[INGEST].settings
        raise unavailable(f"Cannot store messages right now: {exc}", settings.retry_after) from None


def single(kind: str) -> Handler:
    """The handler of the single-message route of `kind` (`track`, `identify`, ...)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        ingest = request.app[INGEST]
        body = await read_body(request, ingest.settings.max_message_bytes, "The message")
        entry = ingest.single(body, kind, arrival_of(request))
        await commit(request, (entry,))
        return success()

    handle.__name__ = f"handle_{kind}"
    return handle


async def batch(request: web.Request) -> web.StreamResponse:
    """`/v1/batch`, `/v1/b`, `/v1/import`: many messages, each accepted or refused alone."""
    ingest = request.app[INGEST]
    body = await read_body(request, ingest.settings.max_batch_bytes, "The batch")
    entries, errors = ingest.batch(body, arrival_of(request))
    if errors:
        request.app[METRICS].tally.refused_items(errors)
    await commit(request, entries)
    return partial(len(entries), errors) if errors else success()
