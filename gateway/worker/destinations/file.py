"""`file`: append each message as one NDJSON line, rotating files by size.

Files are `<directory>/<prefix>-<NNNNNN>.ndjson`; a new one starts when the next line would
take the current one past `max_bytes`. A restarted worker continues after the highest
number. Each batch is flushed and (by default) fsynced before `send` returns, so an
acknowledged message is on disk.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, ClassVar

from gateway.worker.destinations.base import Destination, Result
from gateway.worker.destinations.file_rewrite import collect, files, remove
from gateway.worker.message import Message
from gateway.worker.subject import Subject


class FileDestination(Destination):
    """NDJSON files under `path`, rotated at `max_bytes`."""

    kind: ClassVar[str] = "file"

    def __init__(
        self,
        name: str,
        path: str | Path,
        max_bytes: int = 100 * 1024 * 1024,
        prefix: str = "events",
        fsync: bool = True,
    ) -> None:
        super().__init__(name)
        if max_bytes < 1:
            raise ValueError(f"max_bytes={max_bytes!r}: must be 1 or more")
        if not re.fullmatch(r"[\w.-]+", prefix):
            raise ValueError(f"prefix={prefix!r}: letters, digits, '.', '_' and '-' only")
        self.directory = Path(path)
        self.max_bytes = max_bytes
        self.prefix = prefix
        self.fsync = fsync
        self._file: BinaryIO | None = None
        self._number = 0
        self._size = 0
        self._lock = asyncio.Lock()

    def describe(self) -> str:
        return f"{self.name} (file, {self.directory})"

    async def send(self, batch: Sequence[Message]) -> Result:
        """Append the batch; it is on disk when this returns."""
        async with self._lock:
            try:
                await asyncio.to_thread(self._write, [m.data + b"\n" for m in batch])
            except OSError as exc:
                self._close_file()  # reopen on the next batch, past a half-written line
                return Result.all_failed(len(batch), f"cannot write {self.directory}: {exc}")
        return Result()

    async def close(self) -> None:
        async with self._lock:
            self._close_file()

    @property
    def can_delete(self) -> bool:
        return True

    @property
    def can_access(self) -> bool:
        return True

    async def delete(self, subject: Subject) -> int:
        """Rewrite the files without the subject's lines (the lines do not say their
        source: a regulation of one source removes the subject's lines of every source)."""
        async with self._lock:
            self._close_file()  # reopened at the end of the current file by the next batch
            paths = files(self.directory, self.prefix)
            return await asyncio.to_thread(remove, paths, subject, self.fsync)

    async def access(self, subject: Subject) -> bytes:
        async with self._lock:
            if self._file is not None:
                self._file.flush()
            paths = files(self.directory, self.prefix)
            return await asyncio.to_thread(collect, paths, subject)

    def current_path(self) -> Path:
        """The file being written now."""
        return self.directory / f"{self.prefix}-{self._number:06d}.ndjson"

    def _write(self, lines: list[bytes]) -> None:
        if self._file is None:
            self._open()
        for line in lines:
            if self._size and self._size + len(line) > self.max_bytes:
                self._rotate()
            assert self._file is not None
            self._file.write(line)
            self._size += len(line)
        assert self._file is not None
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        pattern = re.compile(rf"{re.escape(self.prefix)}-(\d+)\.ndjson")
        numbers = [
            int(match.group(1))
            for entry in self.directory.iterdir()
            if (match := pattern.fullmatch(entry.name))
        ]
        self._number = max(numbers, default=1)
        self._file = open(self.current_path(), "ab")  # noqa: SIM115 - held across batches
        self._size = self._file.tell()

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self._file.close()
        self._number += 1
        self._file = open(self.current_path(), "ab")  # noqa: SIM115 - held across batches
        self._size = self._file.tell()

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
