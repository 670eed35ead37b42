"""This process's suppressed and no-track subjects, kept current without a restart.

As `gateway.control.live` does for sources: a background task reads the regulations'
version counter every `POLL` seconds (one `GET`); when it moved, it reads both sets and
swaps a new table into the hot path's `Suppression` whole. A new regulation is in force in
every process within about `POLL` seconds plus the read; the hot path never asks Redis.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from gateway.control.live import POLL
from gateway.ingest.suppression import Suppression, Table
from gateway.ops import tasks
from gateway.store.regulations import RegulationStore

log = logging.getLogger("gateway")


class LiveSuppression:
    """Keeps `suppression.table` at the stored version."""

    def __init__(self, suppression: Suppression, store: RegulationStore) -> None:
        self.suppression = suppression
        self.store = store
        self._task: asyncio.Task[None] | None = None
        self._redis_ok = True

    async def start(self, within: float) -> None:
        """Read the subjects (within `within` seconds), then poll in the background."""
        try:
            await asyncio.wait_for(self.refresh(), within)
        except (RedisError, OSError, TimeoutError) as exc:
            self._unreachable(exc)
        self._task = asyncio.create_task(self._poll(), name="suppression-poll")

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            await tasks.cancel(self._task)

    async def refresh(self) -> None:
        """Read the subjects and swap the table (after this process's own change, so that
        its answer is in force here)."""
        version, suppressed, no_track = await self.store.subjects()
        table = Table(version, suppressed, no_track)
        self.suppression.table = table
        log.debug(
            "gateway: regulations at version %d: %d suppressed, %d not tracked (%d bytes)",
            version,
            table.suppressed.size,
            table.no_track.size,
            table.nbytes,
        )

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            try:
                if await self.store.version() != self.suppression.table.version:
                    await self.refresh()
            except (RedisError, OSError, TimeoutError) as exc:
                self._unreachable(exc)
            else:
                self._redis_ok = True

    def _unreachable(self, exc: BaseException) -> None:
        if self._redis_ok:  # once per outage, not every poll
            log.warning(
                "gateway: cannot read the suppressed subjects from Redis (%s); those in force stay",
                exc or type(exc).__name__,
                extra={"event": "suppression_unreachable"},
            )
        self._redis_ok = False
