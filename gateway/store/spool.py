"""The local disk spool: where entries go when Redis cannot take them, until it can.

A spool is a directory of append-only segment files, `<seq>.seg`, written in order and
replayed in order (see `gateway.store.replay`). Each entry is one record, framed with its
length and a checksum so that a torn write is found (see `gateway.store.spool_format`).

Durability (`fsync`): every append is written with `write()` before the request is
answered, which survives a crash of the gateway process (`kill -9`): the data is in the
kernel. `always` also fsyncs before answering (survives power loss); `everysec` fsyncs
in the background every second (power loss loses at most about a second); `no` leaves
it to the kernel.

Each gateway process owns one slot directory, `<root>/<n>/`, locked with `flock` for its
lifetime; a slot left by a process that is gone can be adopted by another to replay it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from gateway.ops import tasks
from gateway.settings import FSYNC_POLICIES
from gateway.store.entry import Entry
from gateway.store.spool_format import frame

log = logging.getLogger(__name__)

SUFFIX = ".seg"
LOCK_FILE = "lock"
SYNC_INTERVAL = 1.0


class SpoolFull(Exception):
    """The spool has no room for these entries."""


@dataclasses.dataclass(eq=False)
class Segment:
    """One segment file of a spool."""

    path: Path
    size: int
    fd: int | None = None
    """Open for appending while it is the active segment, or while an fsync of it runs."""
    sealed: bool = True
    syncs: int = 0


class Spool:
    """One process's spool directory. Appends go to the active segment; replay reads sealed ones."""

    def __init__(
        self,
        directory: Path,
        lock_fd: int,
        max_bytes: int,
        segment_bytes: int,
        fsync: str,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync policy {fsync!r} is not one of {', '.join(FSYNC_POLICIES)}")
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock_fd: int | None = lock_fd
        self._sealed: list[Segment] = []
        self._active: Segment | None = None
        self._unsynced: set[Segment] = set()
        self._bytes = 0
        self._refused = False
        """An append did not fit, and nothing was removed since: full, for `/ready`."""
        self._next_seq = 0
        self._nonempty = asyncio.Event()
        self._syncer: asyncio.Task[None] | None = None
        self._syncs: set[asyncio.Task[None]] = set()
        for path in sorted(directory.glob(f"*{SUFFIX}")):
            size = path.stat().st_size
            self._sealed.append(Segment(path, size))
            self._bytes += size
            self._next_seq = max(self._next_seq, _seq(path) + 1)
        if self._sealed:
            self._nonempty.set()

    @classmethod
    def open(
        cls, root: Path, max_bytes: int, segment_bytes: int, fsync: str, max_slots: int = 1024
    ) -> Spool:
        """The spool of this process: the first slot under `root` no live process holds.

        An `OSError` that names `root` when it is not a directory this process can write.
        """
        try:
            root.mkdir(parents=True, exist_ok=True)
            for slot in range(max_slots):
                spool = cls.adopt(root / str(slot), max_bytes, segment_bytes, fsync)
                if spool is not None:
                    return spool
        except OSError as exc:  # the same subclass (PermissionError, ...), a clearer message
            # `mkdir(exist_ok=True)` says "File exists" of a file where a directory should be.
            why = "not a directory" if isinstance(exc, FileExistsError) else exc.strerror
            raise OSError(exc.errno, f"cannot keep the spool under {root}: {why}") from exc
        raise OSError(f"all {max_slots} spool slots under {root} are locked")

    @classmethod
    def adopt(cls, directory: Path, max_bytes: int, segment_bytes: int, fsync: str) -> Spool | None:
        """The spool in `directory`, or None while another process holds it."""
        directory.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            return None
        return cls(directory, lock_fd, max_bytes, segment_bytes, fsync)

    def orphans(self) -> list[Path]:
        """Other slot directories next to this one that hold segments (they may be locked)."""
        return [
            path
            for path in sorted(self.directory.parent.iterdir())
            if path != self.directory and path.is_dir() and any(path.glob(f"*{SUFFIX}"))
        ]

    @property
    def empty(self) -> bool:
        """Nothing waits for replay: new entries may go straight to Redis without overtaking."""
        return not self._sealed and (self._active is None or self._active.size == 0)

    @property
    def bytes(self) -> int:
        """Bytes on disk, replayed segments excluded."""
        return self._bytes

    def has_room(self) -> bool:
        """Not full: under the limit, and no append refused since replay last freed space."""
        return self._bytes < self.max_bytes and not self._refused

    def start(self) -> None:
        """Start the background fsync of the `everysec` policy."""
        if self.fsync == "everysec" and self._syncer is None:
            self._syncer = asyncio.create_task(self._sync_every_second())

    async def append(self, entries: Sequence[Entry]) -> None:
        """Write `entries` at the end of the spool, durably as the policy says.

        `SpoolFull` when they do not fit; `OSError` when the disk refuses (nothing of
        them is left in the spool then).
        """
        data = b"".join([frame(entry) for entry in entries])
        if self._bytes + len(data) > self.max_bytes:
            self._refused = True
            raise SpoolFull(
                f"the spool holds {self._bytes} bytes; {len(data)} more exceed {self.max_bytes}"
            )
        segment = self._segment_for(len(data))
        assert segment.fd is not None
        try:
            _write_all(segment.fd, data)
        except OSError:
            # A partial write (disk full) must not stay: the next record would follow garbage.
            with contextlib.suppress(OSError):
                os.ftruncate(segment.fd, segment.size)
                os.lseek(segment.fd, segment.size, os.SEEK_SET)
            raise
        segment.size += len(data)
        self._bytes += len(data)
        self._unsynced.add(segment)
        self._nonempty.set()
        if self.fsync == "always":
            await self._sync(segment)

    async def wait_nonempty(self) -> None:
        """Return once something is spooled."""
        await self._nonempty.wait()

    def seal(self) -> None:
        """Close the active segment for appends, so that replay can take all of it."""
        segment = self._active
        if segment is None or segment.size == 0:
            return
        self._active = None
        segment.sealed = True
        self._sealed.append(segment)
        if segment in self._unsynced and self.fsync != "no":
            self._spawn_sync(segment)  # closes it when done
        else:
            self._close_fd(segment)

    def sealed(self) -> list[Segment]:
        """The segments to replay, oldest first."""
        return list(self._sealed)

    def remove(self, segment: Segment) -> None:
        """Forget a replayed segment and delete its file."""
        self._sealed.remove(segment)
        self._bytes -= segment.size
        self._refused = False
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        if self.empty:
            self._nonempty.clear()

    async def close(self) -> None:
        """Flush to disk (whatever the policy), close, and release the slot."""
        if self._syncer is not None:
            await tasks.cancel(self._syncer)
        if self._syncs:
            await asyncio.gather(*self._syncs, return_exceptions=True)
        for segment in [*self._sealed, *([self._active] if self._active else [])]:
            if segment.fd is not None:
                with contextlib.suppress(OSError):
                    os.fsync(segment.fd)
                self._close_fd(segment, force=True)
        if self._active is not None and self._active.size == 0:
            with contextlib.suppress(FileNotFoundError):
                self._active.path.unlink()
        self._active = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _segment_for(self, size: int) -> Segment:
        active = self._active
        if active is not None and active.size > 0 and active.size + size > self.segment_bytes:
            self.seal()
            active = None
        if active is None:
            path = self.directory / f"{self._next_seq:020d}{SUFFIX}"
            self._next_seq += 1
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            active = self._active = Segment(path, 0, fd, sealed=False)
            if self.fsync != "no":
                _fsync_directory(self.directory)  # the new file's name survives power loss too
        return active

    async def _sync(self, segment: Segment) -> None:
        """fsync `segment` off the event loop; an fsync covers every write before it."""
        if segment.fd is None:
            return
        self._unsynced.discard(segment)
        segment.syncs += 1
        try:
            await asyncio.to_thread(os.fsync, segment.fd)
        finally:
            segment.syncs -= 1
            if segment.sealed:
                self._close_fd(segment)

    def _spawn_sync(self, segment: Segment) -> None:
        task = asyncio.create_task(self._sync(segment))
        self._syncs.add(task)
        task.add_done_callback(self._synced)

    def _synced(self, task: asyncio.Task[None]) -> None:
        self._syncs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("spool: fsync failed: %s", task.exception())

    async def _sync_every_second(self) -> None:
        while True:
            await asyncio.sleep(SYNC_INTERVAL)
            for segment in list(self._unsynced):
                try:
                    await self._sync(segment)
                except OSError as exc:
                    log.error("spool: fsync of %s failed: %s", segment.path, exc)

    def _close_fd(self, segment: Segment, force: bool = False) -> None:
        if segment.fd is not None and (force or segment.syncs == 0):
            os.close(segment.fd)
            segment.fd = None
            self._unsynced.discard(segment)


def _seq(path: Path) -> int:
    try:
        return int(path.stem)
    except ValueError:
        return -1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
