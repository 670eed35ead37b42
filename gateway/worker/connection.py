"""Which Redis a worker command talks to, and the client it uses."""

from __future__ import annotations

import logging
from pathlib import Path

from redis.asyncio import Redis, RedisCluster

from gateway.ops.embedded import URL_FILE
from gateway.store import redis_url
from gateway.store.redis_client import AnyRedis

log = logging.getLogger("gateway.worker")


class NoRedisError(RuntimeError):
    """No Redis URL was given and no embedded server is running."""


def resolve_url(redis_url: str | None, data_dir: Path) -> str:
    """`redis_url`, or the URL of the embedded server `gateway serve` started in `data_dir`."""
    if redis_url:
        return redis_url
    url_file = data_dir / URL_FILE
    try:
        url = url_file.read_text(encoding="utf-8").strip()
    except OSError:
        url = ""
    if not url:
        raise NoRedisError(
            f"no --redis-url given, and no embedded server is running for data directory "
            f"{data_dir} (no {url_file}): pass --redis-url (or GATEWAY_REDIS_URL), or "
            f"--data-dir of a running `gateway serve`"
        )
    log.info(
        "worker: no --redis-url given; using the embedded server at %s (from %s)", url, url_file
    )
    return url


CONNECT_TIMEOUT = 5.0


async def connect(url: str, block: float = 1.0) -> AnyRedis:
    """A client whose socket timeout outlasts a blocking read of `block` seconds.

    A cluster client when `url` is a cluster (`redis+cluster://`, or the server says so:
    `OSError` when it cannot be asked).
    """
    cluster = await redis_url.is_cluster(url, CONNECT_TIMEOUT)
    plain = redis_url.parse(url).url
    if cluster:
        return RedisCluster.from_url(
            plain,
            socket_timeout=block + 10.0,
            socket_connect_timeout=CONNECT_TIMEOUT,
            health_check_interval=30,
        )
    return Redis.from_url(
        plain,
        socket_timeout=block + 10.0,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
    )
