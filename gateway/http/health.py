"""Health endpoints for load balancers and orchestrators.

`GET /health`: the process is alive and serving (liveness). `GET /ready`: it can make
messages durable right now (readiness): the spool has room, or it is empty and Redis
answers. A gateway that is spooling through a Redis outage is ready; one whose spool is
full is not, so a load balancer sends the traffic to a sibling that can take it. Nor is
one that has never reached Redis since it started (`redis: unreachable since start`):
that is a configuration mistake, not an outage (see `gateway.store.first_contact`).
"""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web
from redis.exceptions import RedisClusterException, RedisError

from gateway.errors import JSON
from gateway.http.app_keys import COMMITTER, FIRST_CONTACT, REDIS, SETTINGS
from gateway.http.handlers import Routes
from gateway.http.openapi_parts import (
    RETRY_AFTER,
    Family,
    PathItems,
    json_answer,
    op_id,
    operation,
    ref,
)
from gateway.store import redis_client

PING_TIMEOUT = 0.5
"""Seconds `/ready` waits for Redis: a load balancer's probe must not hang on it."""


async def health(request: web.Request) -> web.StreamResponse:
    """200 while the process serves requests."""
    return _json(200, _LIVE)


async def ready(request: web.Request) -> web.StreamResponse:
    """200 when a message sent now would get a 200; 503 with `Retry-After` otherwise."""
    spool = request.app[COMMITTER].spool
    redis_up = await _ping(request)
    reached = request.app[FIRST_CONTACT].reached or redis_up
    ready = reached and (spool.has_room() or (redis_up and spool.empty))
    body = {
        "status": "ready" if ready else "unavailable",
        "redis": ("up" if redis_up else "down") if reached else "unreachable since start",
        "spool": {
            "bytes": spool.bytes,
            "max_bytes": spool.max_bytes,
            "replaying": not spool.empty,
        },
    }
    if ready:
        return _json(200, body)
    headers = {"Retry-After": str(request.app[SETTINGS].retry_after)}
    return _json(503, body, headers)


def routes() -> Routes:
    """Path -> method -> handler of the health routes."""
    return {"/health": {"GET": health, "HEAD": health}, "/ready": {"GET": ready, "HEAD": ready}}


def describe() -> Family:
    """The health routes' part of the OpenAPI document."""
    spool = {"bytes": 0, "max_bytes": 1073741824, "replaying": False}
    live = {"200": json_answer("The process serves requests.", ref("Health"), example=_LIVE)}
    ready = {
        "200": json_answer(
            "A message sent now would be made durable.",
            ref("Ready"),
            example={"status": "ready", "redis": "up", "spool": spool},
        ),
        "503": json_answer(
            "The spool is full and Redis is away or the spool is replaying.",
            ref("Ready"),
            RETRY_AFTER,
            example={
                "status": "unavailable",
                "redis": "down",
                "spool": {**spool, "bytes": spool["max_bytes"], "replaying": True},
            },
        ),
    }
    items: PathItems = {}
    for path, summary, answers in (
        ("/health", "Liveness: the process is alive and serving", live),
        ("/ready", "Readiness: a message sent now would get a 200", ready),
    ):
        items[path] = {
            method: operation(op_id(method, path), "Health", summary, "", responses=answers)
            for method in ("get", "head")
        }
    return Family(items, _SCHEMAS)


_LIVE = {"status": "ok"}

_SCHEMAS = {
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": "ok"}},
    },
    "Ready": {
        "type": "object",
        "required": ["status", "redis", "spool"],
        "properties": {
            "status": {"enum": ["ready", "unavailable"]},
            "redis": {"enum": ["up", "down"]},
            "spool": {
                "type": "object",
                "required": ["bytes", "max_bytes", "replaying"],
                "properties": {
                    "bytes": {"type": "integer", "minimum": 0},
                    "max_bytes": {"type": "integer", "minimum": 1},
                    "replaying": {"type": "boolean"},
                },
            },
        },
    },
}


async def _ping(request: web.Request) -> bool:
    timeout = min(PING_TIMEOUT, request.app[SETTINGS].redis_timeout)
    try:
        async with asyncio.timeout(timeout):
            return await redis_client.ping(request.app[REDIS])
    except (RedisError, RedisClusterException, OSError, TimeoutError):
        return False  # RedisClusterException: no cluster node could be reached


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(body), content_type=JSON, headers=headers
    )
