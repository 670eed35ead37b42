"""This process's sources table, kept current without a restart.

Every gateway process holds the whole table (the sources file's sources and the admin
API's) in memory: the hot path never asks Redis which source a key belongs to. A
background task polls, every `POLL` seconds, the admin API's version counter (one `GET`)
and the sources file's modification time and size (one `stat`); when either changed it
builds a new table and swaps it in whole, so a request sees the old table or the new one,
never half of each, and none waits for the change. SIGHUP reloads the file at once.

A file that does not parse, or a change that would make the table inconsistent, is
refused with one log line; the last good table stays in force.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from gateway.control.polled import Polled
from gateway.control.records import KeyRecord, Records, as_key, as_source
from gateway.control.store import Store
from gateway.ingest.sources import Source, Sources, SourcesError, read_file

log = logging.getLogger("gateway")

"""Seconds between two checks: a change is in force everywhere within about this, plus
the time to read the records when the counter moved."""

_Stamp = tuple[int, int, int] | None


def build(file: list[Source] | None, records: Records, now: float) -> Sources:
    """The table of the file's sources and the admin API's (a file's id wins); open mode
    while there is neither file nor API source. `SourcesError` when inconsistent."""
    taken = {source.id for source in file or ()}
    keys: defaultdict[str, list[KeyRecord]] = defaultdict(list)
    for key in records.keys.values():
        if not key.expired(now):
            keys[key.source].append(key)
    ordered = sorted(records.sources.values(), key=lambda r: (r.createdAt, r.id))
    plans = records.plans
    api = [as_source(r, keys[r.id], plans.get(r.id)) for r in ordered if r.id not in taken]
    if file is None and not api:
        return Sources(None)
    return Sources([*(file or ()), *api], [as_key(k) for s in api for k in keys[s.id]])


class LiveSources(Polled):
    """The current table, the records and file it was built from, and the task that polls."""

    what = "the admin API's sources"
    event = "sources_unreachable"

    def __init__(self, path: Path | None, initial: Sources) -> None:
        super().__init__()
        self.path = path
        self.table = initial
        self.file: list[Source] | None = None if initial.open else list(initial.configured)
        self.records = Records({}, {})
        self.version = 0
        self.listeners: list[Callable[[Sources], None]] = []
        """Called with each new table (the app puts it where the handlers read it)."""
        self._stamp = _stat(path)
        self._store: Store | None = None
        self._changing: _Stamp = None

    @property
    def store(self) -> Store:
        """The admin API's records in Redis (set by `start`)."""
        assert self._store is not None, "LiveSources.start was not called"
        return self._store

    async def start(self, store: Store, within: float) -> None:
        """Read the admin API's records (within `within` seconds), then poll in the
        background."""
        self._store = store
        await self.start_polling(within)

    async def changed(self) -> bool:
        return await self.store.version() != self.version

    def tick(self) -> None:
        stamp = _stat(self.path)
        if self.path is not None and stamp != self._stamp:
            # Read it once it has stopped changing for a poll: an editor or a script that
            # truncates, then writes, must not be caught halfway.
            if stamp == self._changing:
                self.reload_file("it changed")
            self._changing = stamp

    async def refresh(self) -> None:
        """Read the records again and swap the table (after a change through this process's
        admin API, so its answer is already in force here)."""
        version, records = await self.store.read()
        self.version = version  # a change the table refused is not read again every poll
        if self._swap(self.file, records):
            self.records = records

    def reload_file(self, why: str) -> bool:
        """Read the sources file again; False (and one log line) when it cannot be used."""
        if self.path is None:
            return False
        self._stamp = _stat(self.path)
        try:
            if self._stamp is not None and self._stamp[1] == 0:
                raise SourcesError(f"sources file {self.path} is empty (being written?)")
            file = read_file(self.path)
        except SourcesError as exc:
            log.error(
                "gateway: %s; the sources in force stay", exc, extra={"event": "sources_refused"}
            )
            return False
        if not self._swap(file, self.records):
            return False
        self.file = file
        log.info(
            "gateway: sources file %s reloaded (%s): %d sources",
            self.path,
            why,
            len(file or ()),
            extra={"event": "sources_reloaded"},
        )
        return True

    def _swap(self, file: list[Source] | None, records: Records) -> bool:
        try:
            table = build(file, records, time.time())
        except SourcesError as exc:
            log.error(
                "gateway: %s; the sources in force stay", exc, extra={"event": "sources_refused"}
            )
            return False
        if table.open != self.table.open:
            mode = "open mode" if table.open else "sources mode"
            log.info("gateway: now in %s", mode, extra={"event": "sources_mode"})
        self.table = table
        for listener in self.listeners:
            listener(table)
        return True


def _stat(path: Path | None) -> _Stamp:
    if path is None:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size, found.st_ino
