"""What every route's answer goes through: errors become JSON, and browsers may read it.

This wraps each handler of the route table (`answering`) instead of being an aiohttp
middleware: aiohttp runs middlewares as a chain of coroutines, plus one of its own, for
every request, which cost more than the rest of this put together. The route table has a
fallback for every other path, so no request reaches aiohttp's own 404 or 405.

A client that went away mid-request is nobody's error: `gateway.http.observe` counted and
logged it; here it gets an answer nobody reads, without a log line (aiohttp drops it). A 503
is logged as a warning, at most one line every few seconds (`gateway.ops.quiet`): anyone can
cause them, by filling the memory for bodies for instance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from gateway.errors import ApiError
from gateway.http import cors, observe
from gateway.http.handlers import Handler
from gateway.ops.logs import REQUEST_ID
from gateway.ops.quiet import Quiet
from gateway.ops.tally import CLIENT_GONE

log = logging.getLogger(__name__)


def answering(
    handler: Handler, credentials: bool | Callable[[web.Request], bool] = False
) -> Handler:
    """`handler`, with its errors answered as JSON and CORS headers on every answer.

    `credentials`: whether a browser may send credentials (for a tracking route), or how to
    tell from the request (the fallback of untidy paths).
    """
    quiet = Quiet()

    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except ApiError as exc:
            if exc.status >= 500:
                quiet.warning(
                    log,
                    "unavailable",
                    "%s %s: %d %s",
                    request.method,
                    request.path,
                    exc.status,
                    exc.message,
                )
            response = exc.response()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            allow = exc.headers.get("Allow")
            headers = {"Allow": allow} if allow else None
            response = ApiError(exc.status, exc.reason, exc.text or "", headers).response()
        except ConnectionError:  # the client went away: counted and logged by observe
            response = web.Response(status=CLIENT_GONE)
            response.force_close()
            return response
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = ApiError(500, "Internal error", "the gateway logged the cause").response()
            request_id = REQUEST_ID.get()
            if request_id is not None:  # so that the client's report finds the logged cause
                response.headers[observe.HEADER] = request_id
        cors.allow(
            request,
            response,
            credentials if isinstance(credentials, bool) else credentials(request),
        )
        return response

    answer.__name__ = getattr(handler, "__name__", "answer")
    return answer
