"""`archive`: every message kept as gzip-compressed NDJSON, a file set per source and hour.

    <path>/source=<source>/date=<YYYY-MM-DD>/hour=<HH>/part-<consumer>-<n>.ndjson.gz

The hour is the message's `receivedAt` (UTC). Each batch is appended to its files as one
complete gzip member (a `.gz` may hold several; `zcat` reads them all), written with one
`write` and fsynced, with the new file's directory, before `send` returns: the worker
acknowledges only what is on disk, so a crash loses nothing and duplicates at most the
batch it had not acknowledged. A file is never appended to after its process stopped: a
restarted worker starts the next `<n>`. Files rotate past `max_bytes` and after
`rotate_seconds`, so none stays open (or grows) for long.
"""

from __future__ import annotations

import asyncio
import fcntl
import gzip
import os
import re
import socket
import time
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from gateway.worker.destinations.archive_rewrite import archive_files, collect, remove
from gateway.worker.destinations.base import Destination, Result
from gateway.worker.message import Message
from gateway.worker.subject import Subject

_RECEIVED = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}):")
_NAME = re.compile(r"[\w.-]+")


def hour_of(message: Message) -> tuple[str, str]:
    """(date, hour) of the message's `receivedAt`; of its stream id when it has none."""
    received = message.body.get("receivedAt")
    match = _RECEIVED.match(received) if isinstance(received, str) else None
    if match:
        return match.group(1), match.group(2)
    moment = datetime.fromtimestamp(int(message.id.partition("-")[0]) / 1000, UTC)
    return moment.strftime("%Y-%m-%d"), moment.strftime("%H")


def directory_of(root: Path, source: str, date: str, hour: str) -> Path:
    """Where the messages of one source and hour go."""
    name = urllib.parse.quote(source or "unknown", safe="")
    return root / f"source={name}" / f"date={date}" / f"hour={hour}"


class _Part:
    """One open file of the archive."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.size = 0
        self.opened = time.monotonic()


class ArchiveDestination(Destination):
    """Gzip NDJSON files under `path`, by source and hour, rotated by size and time."""

    kind: ClassVar[str] = "archive"

    def __init__(
        self,
        name: str,
        path: str | Path,
        max_bytes: int = 64 * 1024 * 1024,
        rotate_seconds: float = 600.0,
        consumer: str | None = None,
        compresslevel: int = 6,
    ) -> None:
        super().__init__(name)
        if max_bytes < 1 or rotate_seconds <= 0:
            raise ValueError("max_bytes and rotate_seconds must be more than 0")
        if consumer is not None and not _NAME.fullmatch(consumer):
            raise ValueError(f"consumer={consumer!r}: letters, digits, '.', '_' and '-' only")
        self.root = Path(path)
        self.max_bytes = max_bytes
        self.rotate_seconds = rotate_seconds
        self.compresslevel = compresslevel
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._named = consumer is not None
        self._parts: dict[Path, _Part] = {}
        self._lock = asyncio.Lock()

    def bind(self, consumer: str) -> None:
        """Name the files after the worker's consumer (unless `consumer` was given)."""
        if not self._named:
            self.consumer = re.sub(r"[^\w.-]", "_", consumer)

    def describe(self) -> str:
        return f"{self.name} (archive, {self.root})"

    async def send(self, batch: Sequence[Message]) -> Result:
        """Append the batch to its files; on disk when this returns."""
        groups: dict[Path, list[bytes]] = {}
        for message in batch:
            where = directory_of(self.root, message.source, *hour_of(message))
            groups.setdefault(where, []).append(message.data + b"\n")
        async with self._lock:
            try:
                await asyncio.to_thread(self._write, groups)
            except OSError as exc:
                self._close_all()  # a half-written member: later batches go to new files
                return Result.all_failed(len(batch), f"cannot write {self.root}: {exc}")
        return Result()

    async def close(self) -> None:
        async with self._lock:
            self._close_all()

    @property
    def can_delete(self) -> bool:
        return True

    @property
    def can_access(self) -> bool:
        return True

    async def delete(self, subject: Subject) -> int:
        """Rewrite the files (of the subject's source, when the regulation names one) without
        the subject's messages; how many went."""
        paths = archive_files(self.root, subject.source)
        return await asyncio.to_thread(remove, paths, subject)

    async def access(self, subject: Subject) -> bytes:
        paths = archive_files(self.root, subject.source)
        return await asyncio.to_thread(collect, paths, subject)

    def _write(self, groups: dict[Path, list[bytes]]) -> None:
        for directory, lines in groups.items():
            member = gzip.compress(b"".join(lines), self.compresslevel, mtime=0)
            self._append(directory, member)
        self._rotate_old()

    def _append(self, directory: Path, member: bytes) -> None:
        """Append one member to the directory's open file, under a shared lock; to a new
        file when a regulation's rewrite replaced the open one (`archive_rewrite`)."""
        while True:
            part = self._part(directory, len(member))
            fcntl.flock(part.fd, fcntl.LOCK_SH)
            if _replaced(part):
                self._close(directory)  # closing releases the lock
                continue
            try:
                _write_all(part.fd, member)
                os.fsync(part.fd)
            finally:
                fcntl.flock(part.fd, fcntl.LOCK_UN)
            part.size += len(member)
            return

    def _part(self, directory: Path, adding: int) -> _Part:
        part = self._parts.get(directory)
        if part is not None and part.size and part.size + adding > self.max_bytes:
            self._close(directory)
            part = None
        if part is None:
            part = self._parts[directory] = self._open(directory)
        return part

    def _open(self, directory: Path) -> _Part:
        new_directory = not directory.is_dir()
        directory.mkdir(parents=True, exist_ok=True)
        if new_directory:
            _sync_directory(directory.parent)
        pattern = re.compile(rf"part-{re.escape(self.consumer)}-(\d+)\.ndjson\.gz")
        number = max(
            (int(m.group(1)) for e in os.listdir(directory) if (m := pattern.fullmatch(e))),
            default=0,
        )
        while True:
            number += 1
            path = directory / f"part-{self.consumer}-{number:06d}.ndjson.gz"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            except FileExistsError:
                continue  # another process of the same name: take the next number
            _sync_directory(directory)
            return _Part(path, fd)

    def _rotate_old(self) -> None:
        now = time.monotonic()
        for directory, part in list(self._parts.items()):
            if now - part.opened >= self.rotate_seconds:
                self._close(directory)

    def _close(self, directory: Path) -> None:
        part = self._parts.pop(directory, None)
        if part is not None:
            os.close(part.fd)

    def _close_all(self) -> None:
        for directory in list(self._parts):
            self._close(directory)


def _replaced(part: _Part) -> bool:
    """Whether the file under the part's name is no longer the one it has open."""
    try:
        return os.stat(part.path).st_ino != os.fstat(part.fd).st_ino
    except FileNotFoundError:
        return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _sync_directory(directory: Path) -> None:
    # A new file's name is durable only once its directory is fsynced.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
