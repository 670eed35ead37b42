"""Connecting to Redis the way the gateway needs: fail fast, never retry behind our back.

A request waits for Redis at most `timeout`; a retry inside the client would only hide a
failure the caller must answer (503) or route around (the spool).
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def connect(url: str, timeout: float, max_connections: int = 64) -> Redis:
    """A client for `url` whose every operation fails within about `timeout` seconds."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        max_connections=max_connections,
        health_check_interval=0,
    )
