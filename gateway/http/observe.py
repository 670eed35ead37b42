"""Around each route's handler: a request id, and the answer counted by route and status.

The id is the client's `X-Request-Id` when it is sane (1 to 128 letters, digits and
`._:/+=-`), else one made here: a random prefix per process and a counter, far cheaper
than a UUID and as unique in practice. It is echoed in the answer's `X-Request-Id` and
is the `request_id` of every log line written while the request is handled.

This wraps each handler where the route table is registered rather than being an aiohttp
middleware: aiohttp's middleware chain costs more per request than all of this. It sits
inside the error handling, so it sees an error as the `ApiError` it is (its status, and
why a message was refused), before that is turned into the JSON answer.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Callable, Container

from aiohttp import web

from gateway.errors import ApiError
from gateway.http.address_budget import Admit
from gateway.http.handlers import Handler
from gateway.ops.logs import REQUEST_ID
from gateway.ops.tally import CLIENT_GONE, OTHER_ROUTE, Tally

log = logging.getLogger(__name__)

HEADER = "X-Request-Id"

_SANE = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def request_ids() -> Callable[[], str]:
    """A maker of ids unique to this process and, by its random prefix, across processes."""
    prefix = os.urandom(6).hex()
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter)}"


_new_id = request_ids()


def wrap(
    handler: Handler,
    tally: Tally,
    route: str | None,
    known: Container[str] = (),
    normalize: Callable[[str], str] = str,
    admit: Admit | None = None,
) -> Handler:
    """`handler`, with a request id and its answers counted in `tally` under `route`.

    `route` None: the fallback of untidy paths, labelled `normalize(path)` when that is in
    `known`, else `other`. `admit`: the check of the client address's budget, before the
    handler. A client that goes away is counted as `CLIENT_GONE` and logged at debug.
    """
    by_method: dict[str, dict[int, int]] = {}

    def count(request: web.Request, status: int) -> None:
        if route is None:
            label = normalize(request.path)
            by_status = tally.route(label if label in known else OTHER_ROUTE, request.method)
        else:
            found = by_method.get(request.method)
            if found is None:
                found = by_method[request.method] = tally.route(route, request.method)
            by_status = found
        by_status[status] = by_status.get(status, 0) + 1

    async def observed(request: web.Request) -> web.StreamResponse:
        rid = request.headers.get(HEADER)
        if rid is None or not _SANE.fullmatch(rid):
            rid = _new_id()
        # aiohttp runs each request in a task of its own, with its own copy of the context:
        # no reset needed, and the error handling around this still logs with the id.
        REQUEST_ID.set(rid)
        try:
            if admit is not None:
                admit(request)
            response = await handler(request)
        except ApiError as exc:
            exc.headers[HEADER] = rid
            count(request, exc.status)
            if tally.refused(exc):
                _log_refused(request, exc)
            raise
        except web.HTTPException as exc:
            exc.headers[HEADER] = rid
            count(request, exc.status)
            raise
        except ConnectionError:
            count(request, CLIENT_GONE)
            _log_gone(request)
            raise
        except Exception:
            count(request, 500)  # the error handling logs it and answers 500
            raise
        response.headers[HEADER] = rid
        count(request, response.status)
        return response

    observed.__name__ = getattr(handler, "__name__", "observed")
    return observed


def _log_refused(request: web.Request, error: ApiError) -> None:
    """At debug: the route and why; the details may quote a value, never the body or key."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "%s %s: %d %s",
            request.method,
            request.path,
            error.status,
            error.message,
            extra={"event": "rejected", "status": error.status, "details": error.details},
        )


def _log_gone(request: web.Request) -> None:
    """At debug, one line without a traceback: a client leaving is not the gateway's error."""
    log.debug(
        "%s %s: the client went away before the answer",
        request.method,
        request.path,
        extra={"event": "client_gone", "status": CLIENT_GONE},
    )
