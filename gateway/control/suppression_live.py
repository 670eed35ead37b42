"""This process's suppressed and no-track subjects, kept current without a restart.

As `gateway.control.live` does for sources: a background task reads the regulations'
version counter every `POLL` seconds (one `GET`); when it moved, it reads both sets and
swaps a new table into the hot path's `Suppression` whole. A new regulation is in force in
every process within about `POLL` seconds plus the read; the hot path never asks Redis.
"""

from __future__ import annotations

import logging

from gateway.control.polled import Polled
from gateway.ingest.suppression import Suppression, Table
from gateway.store.regulations import RegulationStore

log = logging.getLogger("gateway")


class LiveSuppression(Polled):
    """Keeps `suppression.table` at the stored version."""

    what = "the suppressed subjects"
    event = "suppression_unreachable"

    def __init__(self, suppression: Suppression, store: RegulationStore) -> None:
        super().__init__()
        self.suppression = suppression
        self.store = store

    async def start(self, within: float) -> None:
        """Read the subjects (within `within` seconds), then poll in the background."""
        await self.start_polling(within)

    async def changed(self) -> bool:
        return await self.store.version() != self.suppression.table.version

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
