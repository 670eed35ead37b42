"""Re-drives asked for from the live inspector's button: the admin listener cannot send to
destinations (only a group's workers know them), so it sets `gateway:redrive:{<group>}`;
a worker of the group takes the request (`GETDEL`: one worker does it) within `EVERY`
seconds, re-drives the group's dead letters (`gateway.worker.redrive`), and keeps its
report in `gateway:redrive:{<group>}:done` for a day, for the page to show.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
from redis.exceptions import RedisError

from gateway.constants import redrive_key
from gateway.ops import tasks
from gateway.ops.timestamps import iso, now
from gateway.store.redis_client import AnyRedis
from gateway.worker.dispatch import Dispatcher
from gateway.worker.redrive import redrive

log = logging.getLogger("gateway.worker")

EVERY = 2.0
"""Seconds between two looks for a request."""
KEEP = 86_400
"""Seconds a re-drive's report is kept."""


async def serve(redis: AnyRedis, group: str, dispatcher: Dispatcher) -> None:
    """Take and run `group`'s re-drive requests until cancelled."""
    key = redrive_key(group)
    while True:
        await asyncio.sleep(EVERY)
        try:
            asked = await redis.getdel(key)
            if asked is None:
                continue
            report = await redrive(redis, group, dispatcher)
            log.info(
                "worker: dead letters of %s re-driven from the inspector: %s",
                group,
                report.line(),
                extra={"event": "redrive", "group": group},
            )
            done = {
                "at": iso(now()),
                "delivered": report.delivered,
                "failed": report.failed,
                "skipped": report.skipped,
            }
            await redis.set(f"{key}:done", msgspec.json.encode(done), ex=KEEP)
        except (RedisError, OSError) as exc:
            tasks.raise_if_cancelled()  # redis-py may turn a cancellation into an error
            log.warning("worker: re-drive request of %s: %s", group, exc)
