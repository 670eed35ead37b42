"""Warnings that a client can cause, rate limited per kind, with a count of what was held back.

A refused pixel, a rejected Commanders Act event or a 503 is worth a line to an operator,
but anyone can send thousands a second. `Quiet` writes the first line of a kind at once,
then at most one a `interval` seconds, each saying (in its text and its `suppressed` field)
how many lines of that kind were left out since the previous one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

INTERVAL = 10.0
"""Seconds between two lines of one kind, by default."""


class Quiet:
    """Rate-limited warnings, one budget per kind (a fixed word chosen by the caller)."""

    __slots__ = ("_clock", "_interval", "_kinds")

    def __init__(
        self, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._kinds: dict[str, list[float]] = {}
        """Kind -> [when the next line may be written, lines suppressed since the last]."""

    def warning(
        self, logger: logging.Logger, kind: str, message: str, *args: object, **extra: Any
    ) -> bool:
        """Log `message % args` at WARNING with `extra` and `event=kind`, unless a line of
        `kind` was written less than the interval ago; whether it was written."""
        now = self._clock()
        state = self._kinds.get(kind)
        if state is None:
            state = self._kinds[kind] = [0.0, 0.0]
        if now < state[0]:
            state[1] += 1
            return False
        suppressed = int(state[1])
        state[0] = now + self._interval
        state[1] = 0.0
        if suppressed:
            message += " (%d similar lines suppressed)"
            args = (*args, suppressed)
        logger.warning(message, *args, extra={"event": kind, "suppressed": suppressed, **extra})
        return True
