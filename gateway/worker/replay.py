"""`gateway replay`: an archive's messages, in time order, to a destination or the streams.

Progress is kept in a checkpoint file after each batch (the hour, and how many of its
messages are done); the same command run again resumes there, and a finished replay
removes it. Each hour's messages are read and ordered the same way every time
(`gateway.worker.archive_reader`), so "the first n of this hour" names the same messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import msgspec

from gateway.store import partitions as registry
from gateway.store.writers import open_writer
from gateway.worker.archive_reader import Window, hours, read_hour
from gateway.worker.connection import connect
from gateway.worker.destinations import Destination
from gateway.worker.dispatch import Dispatcher
from gateway.worker.progress import Progress
from gateway.worker.replay_targets import DestinationTarget, Stopped, StreamsTarget, Target
from gateway.worker.settings import ReplaySettings

log = logging.getLogger("gateway.worker")


@dataclasses.dataclass(slots=True)
class Report:
    """What a replay did."""

    delivered: int = 0
    refused: int = 0
    duplicates: int = 0
    resumed: int = 0
    """Messages a previous run had sent already (from the checkpoint)."""

    def line(self) -> str:
        """The summary line."""
        text = f"replayed {self.delivered} messages"
        if self.duplicates:
            text += f", {self.duplicates} dropped as duplicates the streams still held"
        if self.refused:
            text += f", {self.refused} refused for good (see the log)"
        if self.resumed:
            text += f" (resumed after {self.resumed} sent before)"
        return text


class Checkpoint(msgspec.Struct, kw_only=True):
    """Where a replay is: `done` messages of `hour` sent (every earlier hour done)."""

    query: dict[str, Any]
    hour: str = ""
    done: int = 0
    report: dict[str, int] = msgspec.field(default_factory=dict)


def checkpoint_path(data_dir: Path, query: dict[str, Any]) -> Path:
    """The default checkpoint of a replay: named after what it replays, where."""
    digest = hashlib.sha256(msgspec.json.encode(query, order="sorted")).hexdigest()[:16]
    return data_dir / f"replay-{digest}.json"


def _load(path: Path, query: dict[str, Any]) -> Checkpoint:
    try:
        saved = msgspec.json.decode(path.read_bytes(), type=Checkpoint)
    except FileNotFoundError:
        return Checkpoint(query=query)
    except msgspec.DecodeError as exc:
        raise ValueError(f"checkpoint {path}: unreadable ({exc}); remove it to restart") from None
    if saved.query != query:
        raise ValueError(f"checkpoint {path} belongs to another replay: {saved.query}")
    return saved


def _save(path: Path, checkpoint: Checkpoint) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(msgspec.json.encode(checkpoint))
    os.replace(temporary, path)  # never half a checkpoint


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def replay(
    root: Path,
    window: Window,
    target: Target,
    checkpoint: Path,
    query: dict[str, Any],
    batch_size: int,
) -> int:
    """Send the window's messages to `target`; 0 when all went, 1 if some were refused or
    the replay stopped, 130 when interrupted (resume by running it again)."""
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: main.cancel() if main else None)
    state = _load(checkpoint, query)
    report = Report(**state.report)
    report.resumed = report.delivered + report.refused + report.duplicates
    if state.hour:
        log.info("replay: resuming from %s: %d sent before", checkpoint, report.resumed)
    found = hours(root, window)
    progress = Progress(sys.stderr, len(found))
    code = 0
    try:
        for index, (hour, directories) in enumerate(found):
            key = hour.isoformat()
            if state.hour and key < state.hour:
                continue
            messages = await asyncio.to_thread(read_hour, directories, window)
            start = state.done if key == state.hour else 0
            for first in range(start, len(messages), batch_size):
                sent = await target.send(messages[first : first + batch_size])
                report.delivered += sent.delivered
                report.refused += sent.refused
                report.duplicates += sent.duplicates
                state.hour, state.done = key, first + batch_size
                state.report = {
                    k: v for k, v in dataclasses.asdict(report).items() if k != "resumed"
                }
                _save(checkpoint, state)
                progress.update(index, report.delivered + report.refused + report.duplicates)
            state.hour, state.done = key, len(messages)
        _remove(checkpoint)
        code = 1 if report.refused else 0
    except Stopped as exc:
        log.error("replay: stopped: %s; run the same command again to resume", exc)
        code = 1
    except asyncio.CancelledError:
        log.warning("replay: interrupted; run the same command again to resume")
        code = 130
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        progress.close()
        await target.close()
    sys.stdout.write(f"{report.line()} in {progress.seconds:.1f}s\n")
    return code


def query_of(settings: ReplaySettings, target: str) -> dict[str, Any]:
    """What names a replay (its checkpoint): the archive, the window, the target."""
    return {
        "archive": str(settings.archive.resolve()),
        "source": settings.source,
        "since": settings.since.isoformat() if settings.since else None,
        "until": settings.until.isoformat() if settings.until else None,
        "target": target,
    }


async def command(
    settings: ReplaySettings, destinations: list[Destination], url: str | None
) -> int:
    """`gateway replay`: to `destinations`, or (with `url`) into the streams."""
    if not settings.archive.is_dir():
        raise ValueError(f"--archive {settings.archive}: not a directory")
    target: Target
    if url is not None:
        redis = await connect(url)
        try:
            found = await registry.recorded(redis)
        finally:
            await redis.aclose()
        count = found.current if found else settings.partitions
        writer, _ = await open_writer(url, settings.dedupe_window, 5.0)
        target = StreamsTarget(writer, count, settings.max_attempts)
        name = f"streams of {count} partition(s)"
    else:
        target = DestinationTarget(Dispatcher(destinations), settings.max_attempts)
        name = ", ".join(d.describe() for d in destinations)
    query = query_of(settings, name)
    checkpoint = settings.checkpoint or checkpoint_path(settings.data_dir, query)
    window = Window(settings.source, settings.since, settings.until)
    log.info("replay: %s to %s (checkpoint %s)", settings.archive, name, checkpoint)
    return await replay(settings.archive, window, target, checkpoint, query, settings.batch_size)
