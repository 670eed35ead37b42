"""Reading the archive back (`gateway.worker.destinations.archive`) in time order.

An hour at a time, oldest first: the files of that hour of every source asked for are read,
the messages whose `receivedAt` falls in the window kept, duplicates (a batch written again
after a crash) dropped by source and `messageId`, and the rest sorted by `receivedAt`. An
hour of the chosen sources is held in memory at once. A file whose last gzip member is cut
short (its writer died while writing it, before acknowledging it) is read up to there.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import urllib.parse
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

log = logging.getLogger("gateway.worker")

_HOUR_DIR = re.compile(r"source=([^/]+)/date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})")
_decode = msgspec.json.Decoder().decode


@dataclasses.dataclass(frozen=True, slots=True)
class Archived:
    """One message read from the archive."""

    received: datetime
    message_id: str
    source: str
    data: bytes
    body: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """What to read: one source or all, `since` (inclusive) to `until` (exclusive)."""

    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def has(self, moment: datetime) -> bool:
        """Whether a message received at `moment` is in the window."""
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment < self.until
        )

    def overlaps(self, hour: datetime) -> bool:
        """Whether any of the hour starting at `hour` is in the window."""
        return (self.since is None or hour + timedelta(hours=1) > self.since) and (
            self.until is None or hour < self.until
        )


def hours(root: Path, window: Window) -> list[tuple[datetime, list[Path]]]:
    """The hours of the archive in the window, oldest first, each with its directories."""
    found: dict[datetime, list[Path]] = {}
    for directory in sorted(root.glob("source=*/date=*/hour=*")):
        match = _HOUR_DIR.search(directory.relative_to(root).as_posix())
        if match is None or not directory.is_dir():
            continue
        source = urllib.parse.unquote(match.group(1))
        if window.source is not None and source != window.source:
            continue
        hour = datetime.fromisoformat(f"{match.group(2)}T{match.group(3)}:00:00+00:00")
        if window.overlaps(hour):
            found.setdefault(hour, []).append(directory)
    return sorted(found.items())


def read_hour(directories: list[Path], window: Window) -> list[Archived]:
    """The messages of one hour's directories in the window: once each, in time order."""
    seen: dict[tuple[str, str], Archived] = {}
    for directory in directories:
        source = urllib.parse.unquote(directory.parent.parent.name.removeprefix("source="))
        for path in sorted(directory.glob("*.ndjson.gz")):
            for line in read_lines(path):
                message = _archived(line, source, path)
                if message is not None and window.has(message.received):
                    seen.setdefault((message.source, message.message_id), message)
    return sorted(seen.values(), key=lambda m: (m.received, m.source, m.message_id))


def read_lines(path: Path) -> Iterator[bytes]:
    """The lines of every complete gzip member of `path`."""
    data = path.read_bytes()
    while data:
        member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            text = member.decompress(data)
        except zlib.error as exc:
            log.warning("replay: %s: unreadable past this point (%s)", path, exc)
            return
        if not member.eof:
            log.warning("replay: %s ends in a cut-short batch (never acknowledged): skipped", path)
            return
        yield from text.splitlines()
        data = member.unused_data


def _archived(line: bytes, source: str, path: Path) -> Archived | None:
    try:
        body = _decode(line)
        received = datetime.fromisoformat(body["receivedAt"])
        if received.tzinfo is None:
            received = received.replace(tzinfo=UTC)
        return Archived(received, str(body.get("messageId", "")), source, line, body)
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        log.warning("replay: %s: a line that is not a message with a receivedAt: skipped", path)
        return None
