"""The outer middleware: every answer that is not a success is the gateway's JSON error."""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.errors import ApiError
from gateway.handlers import Handler

log = logging.getLogger(__name__)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn `ApiError`, aiohttp's own HTTP errors and the unexpected into JSON answers."""
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.status >= 500:
            log.warning("%s %s: %d %s", request.method, request.path, exc.status, exc.message)
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = exc.headers.get("Allow")
        headers = {"Allow": allow} if allow else None
        return ApiError(exc.status, exc.reason, exc.text or "", headers).response()
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return ApiError(500, "Internal error", "the gateway logged the cause").response()
