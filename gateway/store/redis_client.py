"""Connecting to Redis the way the gateway needs: fail fast, never retry behind our back.

A request waits for Redis at most `timeout`; a retry inside the client would only hide a
failure the caller must answer (503) or route around (the spool).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

AnyRedis = Redis | RedisCluster
"""A client of one node or of a cluster (it finds each key's node, follows MOVED)."""


def connect(url: str, timeout: float, max_connections: int = 64, cluster: bool = False) -> AnyRedis:
    """A client for `url` whose every operation fails within about `timeout` seconds.

    On a cluster (`url` without `+cluster`), a command for every node (`PING`) asks each.
    """
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "max_connections": max_connections,
        "health_check_interval": 0,
    }
    if cluster:
        return RedisCluster.from_url(url, **options)
    return Redis.from_url(url, retry_on_timeout=False, **options)


async def ping(redis: AnyRedis) -> bool:
    """True when Redis answers; on a cluster, when every master does.

    redis-py's cluster client sends a plain `PING` to one node only.
    """
    if isinstance(redis, RedisCluster):
        return bool(await redis.ping(target_nodes=RedisCluster.PRIMARIES))
    return bool(await redis.ping())
