"""The outermost middleware: a request id for every request, and its answer counted.

The id is the client's `X-Request-Id` when it is sane (1 to 128 letters, digits and
`._:/+=-`), else one made here: a random prefix per process and a counter, far cheaper
than a UUID and as unique in practice. It is echoed in the answer's `X-Request-Id`
and is the `request_id` of every log line written while the request is handled.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp.web_urldispatcher import AbstractRoute

from gateway.handlers import Handler
from gateway.logs import REQUEST_ID
from gateway.metrics import Tally
from gateway.routes import normalize

HEADER = "X-Request-Id"
OTHER_ROUTE = "other"
"""The route label of a path the gateway does not serve (404): paths are not labels."""

_SANE = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def request_ids() -> Callable[[], str]:
    """A maker of ids unique to this process and, by its random prefix, across processes."""
    prefix = os.urandom(6).hex()
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter):x}"


def request_id(given: str | None, make: Callable[[], str]) -> str:
    """`given` when it is a sane id, else a new one."""
    if given is not None and _SANE.fullmatch(given):
        return given
    return make()


def middleware(tally: Tally) -> Middleware:
    """The middleware, counting answers into `tally` by route, method and status."""
    make = request_ids()
    labels: dict[AbstractRoute, str] = {}
    known: set[str] = set()

    def route_of(request: web.Request) -> str:
        route = request.match_info.route
        label = labels.get(route)
        if label is not None:
            return label
        if not known:
            known.update(
                r.canonical for r in request.app.router.resources() if "{" not in r.canonical
            )
        canonical = route.resource.canonical if route.resource is not None else ""
        if canonical in known:
            labels[route] = canonical
            return canonical
        path = normalize(request.path)  # the fallback route: an untidy path, or none at all
        return path if path in known else OTHER_ROUTE

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request_id(request.headers.get(HEADER), make)
        token = REQUEST_ID.set(rid)
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # what `middleware.errors` lets through (< 400)
            exc.headers[HEADER] = rid
            tally.request(route_of(request), request.method, exc.status)
            raise
        finally:
            REQUEST_ID.reset(token)
        response.headers[HEADER] = rid
        tally.request(route_of(request), request.method, response.status)
        return response

    return observe
