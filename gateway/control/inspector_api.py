"""The live inspector on the admin listener: its page (`/`, static files shipped in the
package), its feed (`/v1/inspector/feed`, Server-Sent Events), and what its buttons call
(`gateway.control.inspector_actions`). Behind the admin token like every admin route; the
public port has none of it. docs/inspector.md tells the design."""

from __future__ import annotations

import asyncio
import contextlib
import time
from importlib import resources

from aiohttp import web
from redis.exceptions import RedisError

from gateway.control import inspector_actions
from gateway.control.app_keys import TAIL, Routes
from gateway.control.inspector_rows import Filters, Row, row_of
from gateway.control.inspector_tail import Page, Tail, event
from gateway.errors import invalid

FILES = {
    "inspector.js": "text/javascript",
    "inspector.css": "text/css",
}
"""The page's files, under `gateway/control/inspector/` (package data)."""
BACKFILL_MINUTES = 5
"""Opening the page shows the matching messages of this many minutes before."""
BACKFILL_READ = 1_000
"""Entries read at most per stream for it, newest first."""
BACKFILL_ROWS = 300
"""Rows shown at most from it (the newest matches)."""
_SECURITY = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; img-src 'self' data:",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
"""No other site's script or frame: the page is the operator's, behind the token."""


def routes() -> Routes:
    """The family's routes."""
    return {
        "/": {"GET": page},
        "/inspector/{name}": {"GET": static},
        "/v1/inspector/feed": {"GET": feed},
        **inspector_actions.routes(),
    }


def _file(name: str) -> bytes:
    return resources.files("gateway.control").joinpath("inspector", name).read_bytes()


async def page(request: web.Request) -> web.Response:
    """`GET /`: the inspector's page."""
    return web.Response(body=_file("index.html"), content_type="text/html", headers=_SECURITY)


async def static(request: web.Request) -> web.Response:
    """`GET /inspector/{name}`: the page's script and style."""
    name = request.match_info["name"]
    if name not in FILES:
        raise web.HTTPNotFound()
    return web.Response(body=_file(name), content_type=FILES[name], headers=_SECURITY)


async def feed(request: web.Request) -> web.StreamResponse:
    """`GET /v1/inspector/feed`: the matching messages of the last minutes, then each new
    one as it arrives (`row` events), and each second's counts and rates (`stats`)."""
    filters = Filters(request.query)
    try:
        minutes = min(60, max(0, int(request.query.get("minutes", BACKFILL_MINUTES))))
    except ValueError:
        raise invalid("Invalid minutes", "a whole number from 0 to 60") from None
    tail = request.app[TAIL]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # a proxy in front must not hold the events back
        }
    )
    await response.prepare(request)
    listener = Page(filters)
    try:
        await tail.open(listener)  # before the backfill's read: nothing falls between the two
        rows = await backfill(tail, minutes)
        tail.seed(rows)
        shown = [row for row in rows if filters.matches(row)][-BACKFILL_ROWS:]
        await response.write(event("rates", tail.history()))
        for row in shown:
            await response.write(event("row", row))
        await response.write(event("ready", {"backfill": len(shown)}))
        while True:
            chunk = await listener.queue.get()
            if not chunk:  # the listener shuts down
                break
            await response.write(chunk)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    except (RedisError, OSError) as exc:  # answered 200 already: say it in the stream
        with contextlib.suppress(ConnectionResetError):
            await response.write(event("failed", {"error": f"Redis: {exc}"}))
    finally:
        await tail.close(listener)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


async def backfill(tail: Tail, minutes: int) -> list[Row]:
    """The rows of the last `minutes` of every stream (at most `BACKFILL_READ` entries
    each, the newest), oldest first."""
    if minutes <= 0:
        return []
    since = int((time.time() - minutes * 60) * 1000)
    pipe = tail.redis.pipeline(transaction=False)
    for stream in tail.streams:
        pipe.xrevrange(stream, max="+", min=f"{since}-0", count=BACKFILL_READ)
    replies = await pipe.execute(raise_on_error=False)
    rows: list[Row] = []
    for stream, entries in zip(tail.streams, replies, strict=True):
        if isinstance(entries, list):
            rows += filter(None, (row_of(stream, i, fields) for i, fields in entries))
    rows.sort(key=lambda row: row.at)
    return rows


async def shutdown(app: web.Application) -> None:
    """End every open feed, so that the listener stops without waiting for the pages."""
    for listener in list(app[TAIL].pages):
        listener.end()
