"""A progress bar on a terminal, nothing elsewhere (the caller prints one summary line)."""

from __future__ import annotations

import time
from typing import TextIO

WIDTH = 30
EVERY = 0.1
"""Seconds between two redraws."""


class Progress:
    """Counts and rate of a long job over `total` steps, redrawn in place on `stream`."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = max(total, 1)
        self.shown = _isatty(stream)
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, step: int, count: int, label: str = "messages") -> None:
        """`step` of `total` done, `count` items so far."""
        now = time.monotonic()
        if not self.shown or now - self._drawn < EVERY:
            return
        self._drawn = now
        filled = WIDTH * min(step, self.total) // self.total
        rate = count / max(now - self.started, 1e-6)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (WIDTH - filled)}] {step}/{self.total} hours  "
            f"{count} {label}  {rate:.0f}/s\x1b[K"
        )
        self.stream.flush()

    def close(self) -> None:
        """Clear the bar."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    @property
    def seconds(self) -> float:
        """Since the start."""
        return time.monotonic() - self.started


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
