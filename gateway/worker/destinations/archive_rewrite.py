"""The archive's files read back and rewritten without a subject's messages (regulations:
delete and access).

A file is rewritten whole (a new file renamed over the old, so a crash leaves one or the
other) under an exclusive `flock`. A writer appends to its open file under a shared lock
and, once it holds it, checks that its file is still the one under that name: if a
rewrite replaced it meanwhile, the writer starts a new file instead, so no batch is
appended to a file a rewrite has already read (`ArchiveDestination._append`).
"""

from __future__ import annotations

import fcntl
import gzip
import os
import urllib.parse
from pathlib import Path

from gateway.worker.subject import Subject

PATTERN = "part-*.ndjson.gz"


def archive_files(root: Path, source: str | None) -> list[Path]:
    """The archive's files, of one source or all, in name order."""
    base = root / f"source={urllib.parse.quote(source, safe='')}" if source else root
    return sorted(base.rglob(PATTERN)) if base.is_dir() else []


def source_of(path: Path) -> str | None:
    """The source a file's directory names (`source=<quoted>`)."""
    for part in path.parts:
        if part.startswith("source="):
            return urllib.parse.unquote(part.removeprefix("source="))
    return None


def _lines(data: bytes) -> list[bytes]:
    return [line + b"\n" for line in gzip.decompress(data).split(b"\n") if line]


def collect(paths: list[Path], subject: Subject) -> bytes:
    """The lines of `subject`'s messages in `paths`, as stored."""
    out: list[bytes] = []
    for path in paths:
        with open(path, "rb") as file:
            fcntl.flock(file, fcntl.LOCK_EX)  # no member half-written while it is read
            lines = _lines(file.read())
        out += [line for line in lines if subject.matches_data(line, source_of(path))]
    return b"".join(out)


def remove(paths: list[Path], subject: Subject) -> int:
    """Rewrite each file holding a message of `subject` without it; how many went."""
    removed = 0
    for path in paths:
        with open(path, "rb") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            lines = _lines(file.read())
            source = source_of(path)
            kept = [line for line in lines if not subject.matches_data(line, source)]
            if len(kept) == len(lines):
                continue
            temporary = path.with_name(path.name + ".rewrite")
            with open(temporary, "wb") as out:
                out.write(gzip.compress(b"".join(kept), mtime=0))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)  # still under the lock: writers see the new file
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            removed += len(lines) - len(kept)
    return removed
