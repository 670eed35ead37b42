"""What every gateway process keeps current from Redis without asking it on the hot path:
read once at start, then a version counter polled every `POLL` seconds and the whole
thing read again when the counter moved (`live.LiveSources`, `suppression_live`)."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from gateway.ops import tasks

log = logging.getLogger(__name__)

POLL = 0.25
"""Seconds between polls: a change is in force everywhere within this, plus a read."""


class Polled:
    """A background poll of one Redis record; subclasses say how to read and compare it."""

    what = "the records"
    """What is read, for the warning of an outage ("the admin API's sources")."""
    event = "records_unreachable"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._redis_ok = True

    async def refresh(self) -> None:
        """Read the record again and put it in force."""
        raise NotImplementedError

    async def changed(self) -> bool:
        """Whether the version in Redis is not the one in force."""
        raise NotImplementedError

    def tick(self) -> None:
        """Anything else to look at on every poll (nothing by default)."""

    async def start_polling(self, within: float) -> None:
        """Read the record (within `within` seconds), then poll in the background."""
        try:
            await asyncio.wait_for(self.refresh(), within)
        except (RedisError, OSError, TimeoutError) as exc:
            self._unreachable(exc)
        self._task = asyncio.create_task(self._poll(), name=f"poll {self.what}")

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            await tasks.cancel(self._task)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            self.tick()
            try:
                if await self.changed():
                    await self.refresh()
            except (RedisError, OSError, TimeoutError) as exc:
                self._unreachable(exc)
            else:
                self._redis_ok = True

    def _unreachable(self, exc: BaseException) -> None:
        if self._redis_ok:  # once per outage, not every poll
            log.warning(
                "gateway: cannot read %s from Redis (%s); what is in force stays",
                self.what,
                exc or type(exc).__name__,
                extra={"event": self.event},
            )
        self._redis_ok = False
