"""Requests aiohttp cannot parse (a broken request line, header or chunked body) get JSON.

aiohttp answers those itself, before any route or handler sees them: a `text/plain` 400, and
an ERROR log line with a traceback for each. `json_errors` makes the server of a runner answer
them like every other refusal of the gateway: the JSON error body (`Malformed HTTP request`
and what the parser said), counted in the metrics (route `other`, reason `malformed`) and
logged at DEBUG, as refused requests are; a scanner sending garbage is not the gateway's
error. The connection is closed after the answer, as aiohttp does: what follows on it
cannot be framed.

Why a class swap, and why here. aiohttp has no supported hook for these answers: its parser's
errors never reach a middleware or a handler, `request_factory` is not called with them, and
the text comes from `RequestHandler.handle_error`, a method of a class that `web.Server`
instantiates itself (aio-libs/aiohttp#3287, open since 2018, asks for such a hook). The
least intrusive way in is the one kept here: after `runner.setup()`, the runner's
`web.Server` becomes a subclass whose `__call__` turns each new connection's
`RequestHandler` into a subclass overriding `handle_error`. Building a `web.Server` ourselves
(for a `ServerRunner`) would copy more of aiohttp's private assembly (`Application._handle`,
`_make_request`, startup and freezing), not less. So it stays in this one module, and
`check_aiohttp` says loudly, at startup (`json_errors` calls it) and in
`tests/test_framing.py`, when aiohttp no longer has what this relies on; setup.cfg pins
aiohttp to the minor release it was checked against (3.14).
"""

from __future__ import annotations

import inspect
import logging

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.errors import MALFORMED_HTTP, ApiError, Code
from gateway.http.observe import OTHER_ROUTE
from gateway.ops.tally import Tally

log = logging.getLogger(__name__)


_HANDLE_ERROR = ["self", "request", "status", "exc", "message"]


class AiohttpChanged(RuntimeError):
    """aiohttp's internals are no longer what `json_errors` relies on."""


def check_aiohttp() -> None:
    """Raise `AiohttpChanged` unless aiohttp still has what `json_errors` relies on: the
    `handle_error` it calls for a request it cannot parse, with the same parameters; a
    `web.Server` that makes each connection's `RequestHandler` in `__call__`; and a
    `RequestHandler` whose instances may take a subclass's `__class__` (same slots)."""
    problems = []
    handle_error = getattr(RequestHandler, "handle_error", None)
    if handle_error is None:
        problems.append("RequestHandler.handle_error is gone")
    elif (parameters := list(inspect.signature(handle_error).parameters)) != _HANDLE_ERROR:
        problems.append(f"RequestHandler.handle_error({', '.join(parameters)})")
    if not hasattr(RequestHandler, "_make_error_handler"):
        problems.append("parse errors no longer go through RequestHandler._make_error_handler")
    if "__call__" not in vars(web.Server):
        problems.append("web.Server no longer makes its handlers in __call__")
    try:
        probe = RequestHandler.__new__(RequestHandler)
        probe.__class__ = _layout_probe()
    except TypeError as exc:
        problems.append(f"a RequestHandler cannot become a subclass: {exc}")
    if problems:
        raise AiohttpChanged(
            f"aiohttp {aiohttp.__version__} changed what gateway/http/framing.py relies on: "
            + "; ".join(problems)
        )


def _layout_probe() -> type[RequestHandler]:
    class Probe(RequestHandler):
        __slots__ = ()

    return Probe


def json_errors(runner: web.BaseRunner, tally: Tally) -> None:
    """Make the server of `runner` (set up) answer unparseable requests as JSON."""
    check_aiohttp()
    server = runner.server
    if type(server) is not web.Server:
        raise TypeError(f"expected a set-up runner's web.Server, not {server!r}")

    class JsonErrorHandler(RequestHandler):
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

    class JsonErrorServer(web.Server):
        def __call__(self) -> RequestHandler:
            handler = super().__call__()
            handler.__class__ = JsonErrorHandler
            return handler

    server.__class__ = JsonErrorServer
