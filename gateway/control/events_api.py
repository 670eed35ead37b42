"""`/v1/events/{messageId}` and `/v1/deliveries`: where a message is and what became of it,
and what the workers delivered per minute (Commanders Act's "event delivery API").

The reads are `gateway.control.lookup`'s and `gateway.store.deliveries`'s; nothing here
writes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from aiohttp import web

from gateway.control.app_keys import LOOKUP, Routes
from gateway.control.event_schemas import DeliveriesView, DeliveryRow
from gateway.errors import JSON, ApiError, invalid
from gateway.ops.timestamps import iso
from gateway.store import deliveries

MAX_MINUTES = 120
"""The most minutes `/v1/deliveries` answers: what the workers' counts keep."""
_encode = msgspec.json.Encoder().encode


def routes() -> Routes:
    """The family's routes."""
    return {
        "/v1/events/{messageId}": {"GET": get_event},
        "/v1/deliveries": {"GET": get_deliveries},
    }


async def get_event(request: web.Request) -> web.Response:
    """`GET /v1/events/{messageId}`: the accepted message and each group's status, or the
    reason it was refused; 404 if it was not seen (within the dedupe window)."""
    message_id = request.match_info["messageId"]
    lookup = request.app[LOOKUP]
    found = await lookup.event(message_id)
    if found is None:
        raise ApiError(
            404,
            "No such event",
            f"{message_id!r} was neither accepted within the last {lookup.window}s "
            "nor refused recently",
        )
    return _answer(found)


async def get_deliveries(request: web.Request) -> web.Response:
    """`GET /v1/deliveries`: per minute, group, destination and source, the counts of the
    last `minutes` (60 unless told); `source`, `destination` and `group` filter."""
    query = request.query
    try:
        minutes = int(query.get("minutes", "60"))
    except ValueError:
        minutes = 0
    if not 1 <= minutes <= MAX_MINUTES:
        raise invalid("Invalid minutes", f"a whole number from 1 to {MAX_MINUTES}")
    rows = await deliveries.read(request.app[LOOKUP].redis, minutes)
    wanted = {k: query[k] for k in ("source", "destination", "group") if k in query}
    view = DeliveriesView(
        minutes=minutes,
        deliveries=[
            DeliveryRow(
                minute=iso(datetime.fromtimestamp(row.minute, UTC)),
                group=row.group,
                destination=row.destination,
                source=row.source,
                delivered=row.delivered,
                retried=row.retried,
                failed=row.failed,
                dead=row.dead,
            )
            for row in rows
            if all(getattr(row, k) == v for k, v in wanted.items())
        ],
    )
    return _answer(view)


def _answer(value: object) -> web.Response:
    return web.Response(body=_encode(value), content_type=JSON)
