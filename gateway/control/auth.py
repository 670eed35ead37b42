"""Who may use the admin listener: the bearer of the admin token, or a browser holding the
session cookie that the token's URL (`/?token=...`) gave it. Everything else is a 401,
whatever the path, so that the listener tells nothing to those without the token."""

from __future__ import annotations

import logging

from aiohttp import web
from redis.exceptions import RedisError
from yarl import URL

from gateway.control import token as tokens
from gateway.control.app_keys import TOKEN, Handler
from gateway.errors import ApiError

COOKIE = "gateway_admin"

log = logging.getLogger(__name__)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check the token, trade a `?token=` URL for a cookie; answer errors as JSON."""
    token = request.app[TOKEN]
    given = request.query.get("token")
    try:
        if given is not None and request.method in ("GET", "HEAD"):
            return _session(request, given, token)
        if not allowed(request, token):
            raise unauthorized()
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return ApiError(exc.status, exc.reason, exc.text or "").response()
    except RedisError as exc:
        log.warning("admin %s %s: Redis: %s", request.method, request.path, exc)
        return ApiError(503, "Redis is unavailable", "the change was not made").response()
    except Exception:
        log.exception("admin %s %s failed", request.method, request.path)
        return ApiError(500, "Internal error", "the gateway logged the cause").response()


def allowed(request: web.Request, token: str) -> bool:
    """Whether the request carries the token (`Authorization: Bearer`) or its cookie."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return tokens.matches(credentials.strip(), token)
    cookie = request.cookies.get(COOKIE)
    return cookie is not None and tokens.matches(cookie, tokens.session(token))


def unauthorized() -> ApiError:
    """The 401 of a missing or wrong token (which one is not said)."""
    return ApiError(
        401,
        "Unauthorized",
        "send Authorization: Bearer <admin token> (docs/admin.md)",
        {"WWW-Authenticate": 'Bearer realm="gateway admin"'},
    )


def _session(request: web.Request, given: str, token: str) -> web.StreamResponse:
    """The printed URL: a cookie for the browser, and the same page without the token."""
    if not tokens.matches(given, token):
        raise unauthorized()
    query = {k: v for k, v in request.query.items() if k != "token"}
    location = str(URL.build(path=request.path, query=query))
    response = web.Response(status=303, headers={"Location": location})
    response.set_cookie(COOKIE, tokens.session(token), httponly=True, samesite="Strict", path="/")
    return response
