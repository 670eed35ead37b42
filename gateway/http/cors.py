"""CORS: browsers on any origin may send events, and read every answer, errors included.

analytics.js posts `text/plain` with an `Authorization` header, so each call is preceded
by a preflight. The preflight is answered on every event route (`with_preflight`);
`allow` puts the allow headers on every other answer (see `gateway.http.answering`), so a
browser also sees a 400, 413 or 503 (and its `Retry-After`) instead of an opaque network error.

Credentials (`Access-Control-Allow-Credentials`) are allowed only on the tracking routes,
where an SDK may send them (XHR with `withCredentials`), and never to `Origin: null` (a
sandboxed frame, a `file:` page: any page can make itself that origin). Elsewhere (the
metrics, health, docs, webhooks) a browser may read an answer, but not with credentials.
"""

from __future__ import annotations

from aiohttp import web

from gateway.http.handlers import Routes

ALLOW_METHODS = "POST, GET, OPTIONS"
MAX_AGE = "86400"
"""Seconds a browser may cache a preflight (Chromium caps it at two hours)."""
EXPOSE_HEADERS = "Retry-After, X-Request-Id"


def allow(request: web.Request, response: web.StreamResponse, credentials: bool) -> None:
    """Let the calling page read `response`; every answer gets it, errors included.

    `credentials`: whether the route is one where an SDK may send credentials.
    """
    origin = request.headers.get("Origin")
    headers = response.headers
    if credentials and origin and origin != "null":
        headers["Access-Control-Allow-Origin"] = origin
        # The gateway uses no cookies; allowing credentials lets SDKs that send them anyway
        # (XHR with `withCredentials`) through. Never with `*`, which browsers refuse.
        headers["Access-Control-Allow-Credentials"] = "true"
    else:
        headers["Access-Control-Allow-Origin"] = "*"
    headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    headers.add("Vary", "Origin")


async def preflight(request: web.Request) -> web.StreamResponse:
    """`OPTIONS`: allow the method and whatever headers the browser asks for."""
    headers = {
        "Access-Control-Allow-Methods": ALLOW_METHODS,
        "Access-Control-Max-Age": MAX_AGE,
    }
    asked = request.headers.get("Access-Control-Request-Headers")
    if asked:
        # Echoed rather than `*`: a `*` does not cover `Authorization`.
        headers["Access-Control-Allow-Headers"] = asked
    response = web.Response(status=204, headers=headers)
    response.headers.add("Vary", "Access-Control-Request-Headers")
    return response


def with_preflight(routes: Routes) -> Routes:
    """`routes` with an `OPTIONS` preflight on every path."""
    return {path: {**methods, "OPTIONS": preflight} for path, methods in routes.items()}
