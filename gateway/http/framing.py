"""The connection level: unparseable requests get JSON, and no request's headers take forever.

aiohttp answers requests it cannot parse itself, before any route or handler sees them: a
`text/plain` 400, and an ERROR log line with a traceback for each. `json_errors` makes the
server of a runner answer them like every other refusal of the gateway: the JSON error body
(`Malformed HTTP request` and what the parser said), counted in the metrics (route `other`,
reason `malformed`) and logged at DEBUG, as refused requests are; a scanner sending garbage
is not the gateway's error. The connection is closed after the answer, as aiohttp does:
what follows on it cannot be framed.

aiohttp has no time limit on a request's headers either (its keep-alive timer only closes a
connection idle since its last answer): a client that sends a request's first bytes and
then trickles or stops (slowloris) would keep its connection, and a file descriptor, for
as long as it likes. Each connection's handler here starts a timer when the bytes of a new
request arrive, and cancels it when the headers are complete; when it fires first, the
client gets a JSON `408` and the connection is closed. The timer is started only when a
request does not come whole in one read, so a request that does costs one comparison.
`hang_up` lets a handler that gives up on a body (its time limit, the memory cap) close
the connection after its answer instead of aiohttp reading the rest of the body.

Why here, and how. aiohttp has no supported hook for these (its parser's errors never reach
a middleware or a handler, `request_factory` is not called with them, and the text comes
from `RequestHandler.handle_error`; aio-libs/aiohttp#3287, open since 2018, asks for one).
The least intrusive way in is the one kept here: after `runner.setup()`, the runner's
`web.Server` becomes a subclass whose `__call__` makes each connection's handler a
`GatewayHandler`, a `RequestHandler` subclass. `check_aiohttp` says loudly, at startup
(`json_errors` calls it) and in `tests/test_framing.py`, when aiohttp no longer has what
this relies on; setup.cfg pins aiohttp to the minor release it was checked against (3.14).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.errors import MALFORMED_HTTP, ApiError, Code
from gateway.ops.tally import OTHER_ROUTE, Tally

log = logging.getLogger(__name__)


_HANDLE_ERROR = ["self", "request", "status", "exc", "message"]
_USED_SLOTS = (
    "_request_count",
    "_request_in_progress",
    "_messages",
    "_lingering_time",
    "_loop",
    "transport",
)
"""What `GatewayHandler` reads of aiohttp's `RequestHandler` (or its base)."""
_USED_SERVER = ("_kwargs", "_loop")
"""What `GatewayServer.__call__` reads of aiohttp's `web.Server`, to make a handler as it does."""
DEFAULT_HEADER_TIMEOUT = 10.0


class AiohttpChanged(RuntimeError):
    """aiohttp's internals are no longer what `json_errors` relies on."""


def check_aiohttp() -> None:
    """Raise `AiohttpChanged` unless aiohttp still has what `json_errors` relies on: the
    `handle_error` it calls for a request it cannot parse, with the same parameters; a
    `web.Server` that makes each connection's `RequestHandler` in `__call__` from its
    `_kwargs`; and the `RequestHandler` state `GatewayHandler` reads."""
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
    slots = {name for kind in RequestHandler.__mro__ for name in getattr(kind, "__slots__", ())}
    missing = [name for name in _USED_SLOTS if name not in slots]
    if missing:
        problems.append(f"RequestHandler has no {', '.join(missing)}")
    if "data_received" not in vars(RequestHandler):
        problems.append("RequestHandler.data_received is gone")
    init = inspect.signature(web.Server.__init__).parameters
    if "kwargs" not in init or "loop" not in init:
        problems.append("web.Server no longer takes the handler's options as **kwargs")
    if problems:
        raise AiohttpChanged(
            f"aiohttp {aiohttp.__version__} changed what gateway/http/framing.py relies on: "
            + "; ".join(problems)
        )


class GatewayHandler(RequestHandler):
    """aiohttp's handler of one connection, with the JSON 400 and the header time limit."""

    __slots__ = ("_header_timeout", "_header_timer", "_tally")

    def __init__(self, manager: web.Server, *, tally: Tally, header_timeout: float, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self._tally = tally
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        """Parse as aiohttp does; time a request whose headers did not come whole."""
        count = self._request_count
        super().data_received(data)
        if self._request_count != count:  # headers complete: the usual case, one read
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
        elif (
            data
            and self._header_timer is None
            and not self._request_in_progress  # a body's bytes: the handler times those
            and not self._messages
        ):
            self._header_timer = self._loop.call_later(self._header_timeout, self._headers_late)

    def connection_lost(self, exc: BaseException | None) -> None:
        """As aiohttp, and no timer left behind."""
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def hang_up(self) -> None:
        """Close the connection after the answer being sent, without reading the rest of the
        request's body first (aiohttp's lingering close)."""
        self._lingering_time = 0.0

    def _headers_late(self) -> None:
        self._header_timer = None
        transport = self.transport
        if self._request_in_progress or self._messages or transport is None:
            return  # the headers came after all, or the connection is gone
        error = ApiError(
            408,
            "Request Timeout",
            f"the request's headers did not arrive within {self._header_timeout:g} seconds",
            code=Code.TIMEOUT,
        )
        by_status = self._tally.route(OTHER_ROUTE, "UNKNOWN")  # no request line yet, perhaps
        by_status[408] = by_status.get(408, 0) + 1
        log.debug("408 from %s: %s", _peer(transport), error.details, extra={"event": "timeout"})
        transport.write(_raw(error))
        self.force_close()  # the transport sends what it holds, then closes

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The gateway's JSON error, counted, instead of aiohttp's text and traceback."""
        tally = self._tally
        if status >= 500:  # a bug, not the client's: aiohttp's log line with traceback
            super().handle_error(request, status, exc, message)
            error = ApiError(500, "Internal error", "the gateway logged the cause")
        else:
            said = message or (str(exc) if exc else "") or "it could not be parsed"
            error = ApiError(status, MALFORMED_HTTP, " ".join(said.split()), code=Code.MALFORMED)
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


def hang_up(request: web.BaseRequest) -> None:
    """Close `request`'s connection once its answer is sent (see `GatewayHandler.hang_up`)."""
    protocol = request.protocol
    if isinstance(protocol, GatewayHandler):
        protocol.hang_up()


def json_errors(
    runner: web.BaseRunner, tally: Tally, header_timeout: float = DEFAULT_HEADER_TIMEOUT
) -> None:
    """Make the server of `runner` (set up) answer unparseable requests as JSON, and close
    connections whose request headers take more than `header_timeout` seconds."""
    check_aiohttp()
    server = runner.server
    if type(server) is not web.Server:
        raise TypeError(f"expected a set-up runner's web.Server, not {server!r}")
    missing = [name for name in _USED_SERVER if not hasattr(server, name)]
    if missing:
        raise AiohttpChanged(f"aiohttp's web.Server has no {', '.join(missing)}")

    class GatewayServer(web.Server):
        def __call__(self) -> RequestHandler:
            return GatewayHandler(
                self,
                tally=tally,
                header_timeout=header_timeout,
                loop=self._loop,
                **self._kwargs,
            )

    server.__class__ = GatewayServer


def _raw(error: ApiError) -> bytes:
    """`error` as a whole HTTP/1.1 answer that closes the connection."""
    body = error.response().body
    assert isinstance(body, bytes)
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s" % (error.status, error.error.encode(), len(body), body)
    )


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"
