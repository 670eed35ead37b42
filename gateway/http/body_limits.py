"""How long a body may take to arrive, and how much memory bodies being read may hold.

A body that came whole with its headers (most do) is read at once and none of this applies.
One still arriving is read under a deadline: the whole body within `timeout` seconds, and,
once `GRACE` seconds have passed, at `min_rate` bytes a second on average, so a body that
stalls is given up as soon as its average falls below that rate. The answer is a JSON `408`
and the connection is closed.

While it arrives, a body holds memory: its bytes, and what it inflates to. All such bodies
of a process together may hold at most `memory` bytes; a body that would go past it is
answered `503` with `Retry-After` and its connection closed. With aiohttp's own buffer per
connection (its read buffer stops the socket at 2 x 64 KiB), what bodies cost a process
is bounded whatever the number of connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from gateway.errors import ApiError, Code, unavailable

GRACE = 5.0
"""Seconds a body may take before its minimum rate is enforced."""


class BodyLimits:
    """The time and memory limits of the bodies a process reads (one per application)."""

    __slots__ = ("held", "memory", "min_rate", "retry_after", "timeout")

    def __init__(self, timeout: float, min_rate: int, memory: int, retry_after: int) -> None:
        self.timeout = timeout
        self.min_rate = min_rate
        self.memory = memory
        self.retry_after = retry_after
        self.held = 0
        """Bytes held now by the bodies being read."""

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[Reading]:
        """Read one body within the limits; the memory it held is given back on the way out."""
        reading = Reading(self, asyncio.get_running_loop().time())
        try:
            async with asyncio.timeout_at(reading.deadline) as timeout:
                reading.timeout = timeout
                yield reading
        except TimeoutError:
            raise ApiError(
                408,
                "Request Timeout",
                f"the body did not arrive within {self.timeout:g} seconds"
                + (f" at {self.min_rate} bytes a second" if self.min_rate else ""),
                code=Code.TIMEOUT,
            ) from None
        finally:
            self.held -= reading.held


class Reading:
    """One body being read: the bytes it holds, and the deadline its arrival moves on."""

    __slots__ = ("deadline", "held", "limits", "start", "timeout")

    def __init__(self, limits: BodyLimits, start: float) -> None:
        self.limits = limits
        self.start = start
        self.held = 0
        self.deadline = start + (min(limits.timeout, GRACE) if limits.min_rate else limits.timeout)
        self.timeout: asyncio.Timeout | None = None

    def arrived(self, received: int, held: int) -> None:
        """`received` bytes of the body have arrived; it holds `held` bytes more than before.

        Raises the 503 when that would take the process past its memory for bodies.
        """
        limits = self.limits
        if held:
            if limits.held + held > limits.memory:
                raise unavailable(
                    "Too many request bodies in flight; try again shortly", limits.retry_after
                )
            limits.held += held
            self.held += held
        if limits.min_rate and self.timeout is not None:
            last = self.start + limits.timeout
            by_rate = min(last, self.start + GRACE + received / limits.min_rate)
            # Moved a second at a time: rescheduling makes a timer each time.
            if by_rate >= self.deadline + 1.0 or (by_rate == last and self.deadline < last):
                self.deadline = by_rate
                self.timeout.reschedule(by_rate)
