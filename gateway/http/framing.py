"""Requests aiohttp cannot parse (a broken request line, header or chunked body) get JSON.

aiohttp answers those itself, before any route or handler sees them: a `text/plain` 400, and
an ERROR log line with a traceback for each. `json_errors` makes the server of a runner answer
them like every other refusal of the gateway: the JSON error body (`Malformed HTTP request`
and what the parser said), counted in the metrics (route `other`, reason `malformed`) and
logged at DEBUG, as refused requests are; a scanner sending garbage is not the gateway's
error. The connection is closed after the answer, as aiohttp does: what follows on it
cannot be framed.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.errors import MALFORMED_HTTP, ApiError, Code
from gateway.http.observe import OTHER_ROUTE
from gateway.ops.tally import Tally

log = logging.getLogger(__name__)


def json_errors(runner: web.BaseRunner, tally: Tally) -> None:
    """Make the server of `runner` (set up) answer unparseable requests as JSON."""
    server = runner.server
    if type(server) is not web.Server:
        raise TypeError(f"expected a set-up runner's web.Server, not {server!r}")

    class Handler(RequestHandler):
        __slots__ = ()  # aiohttp's handler's layout: each connection's handler becomes one

        def handle_error(
            self,
            request: web.BaseRequest,
            status: int = 500,
            exc: BaseException | None = None,
            message: str | None = None,
        ) -> web.StreamResponse:
            if status >= 500:  # a bug, not the client's: aiohttp's log line with traceback
                super().handle_error(request, status, exc, message)
                error = ApiError(500, "Internal error", "the gateway logged the cause")
            else:
                said = message or (str(exc) if exc else "") or "it could not be parsed"
                error = ApiError(
                    status, MALFORMED_HTTP, " ".join(said.split()), code=Code.MALFORMED
                )
                tally.refused(error)
                log.debug(
                    "%s from %s: %s",
                    MALFORMED_HTTP,
                    request.remote,
                    error.details,
                    extra={"event": "rejected", "status": status},
                )
                if request.writer.output_size > 0:  # as aiohttp: too late for an answer
                    raise ConnectionError("an answer was already sent on this connection")
            by_status = tally.route(OTHER_ROUTE, request.method)
            by_status[error.status] = by_status.get(error.status, 0) + 1
            response = error.response()
            response.force_close()
            return response

    class Server(web.Server):
        def __call__(self) -> RequestHandler:
            handler = super().__call__()
            handler.__class__ = Handler
            return handler

    server.__class__ = Server
