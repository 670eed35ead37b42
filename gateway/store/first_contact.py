"""Whether Redis has answered once since the gateway started.

Spooling through an outage is right, but a gateway that has never reached its Redis is
almost always misconfigured (a typo in the host, a closed port): every 200 it gives goes to
the spool and nothing downstream sees it. So until Redis first answers, this says so: an
ERROR naming the URL, repeated while it lasts, and `/ready` answers 503 (see
`gateway.http.health`). Outages after that keep the spool's behaviour and `/ready`'s 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import RedisClusterException, RedisError

from gateway.ops import tasks
from gateway.store import redis_client
from gateway.store.redis_client import AnyRedis

log = logging.getLogger(__name__)

RETRY_EVERY = 1.0
"""Seconds between pings while Redis has never answered."""
REPEAT_ERROR_EVERY = 10.0
"""Seconds between the repeated ERROR lines (the first one comes at once)."""


def safe_url(url: str) -> str:
    """`url` with any password replaced by `***`, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


class FirstContact:
    """Pings Redis in the background until it answers once; `reached` says whether it has."""

    def __init__(self, redis: AnyRedis, url: str, timeout: float) -> None:
        self._redis = redis
        self._url = safe_url(url)
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self.reached = False

    async def start(self) -> None:
        """Ping once now (so a healthy start logs nothing), then keep trying in the background."""
        if await self._ping():
            self.reached = True
            return
        self._task = asyncio.create_task(self._until_reached())

    async def stop(self) -> None:
        if self._task is not None:
            await tasks.cancel(self._task)
            self._task = None

    async def _until_reached(self) -> None:
        began = time.monotonic()
        last_error = -REPEAT_ERROR_EVERY
        while not await self._ping():
            now = time.monotonic()
            if now - last_error >= REPEAT_ERROR_EVERY:
                last_error = now
                log.error(
                    "Redis at %s is unreachable since the gateway started (%.0fs ago): "
                    "messages go to the local spool and /ready answers 503 until it answers; "
                    "check --redis-url",
                    self._url,
                    now - began,
                    extra={"event": "redis_unreachable_since_start"},
                )
            await asyncio.sleep(RETRY_EVERY)
        self.reached = True
        log.info(
            "Redis at %s answers; replaying what was spooled",
            self._url,
            extra={"event": "redis_reached"},
        )

    async def _ping(self) -> bool:
        with contextlib.suppress(RedisError, RedisClusterException, OSError, TimeoutError):
            async with asyncio.timeout(self._timeout):
                return await redis_client.ping(self._redis)
        return False
