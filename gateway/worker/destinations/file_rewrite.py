"""A `file` destination's files read back and rewritten without a subject's lines
(regulations: delete and access)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from gateway.worker.subject import Subject


def files(directory: Path, prefix: str) -> list[Path]:
    """The destination's files, oldest first."""
    if not directory.is_dir():
        return []
    pattern = re.compile(rf"{re.escape(prefix)}-(\d+)\.ndjson")
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := pattern.fullmatch(p.name))]
    return [path for _, path in sorted(found)]


def collect(paths: list[Path], subject: Subject) -> bytes:
    """The lines of `subject`'s messages, as they are in the files."""
    out = []
    for path in paths:
        with open(path, "rb") as file:
            out += [line for line in file if subject.matches_data(line)]
    return b"".join(line if line.endswith(b"\n") else line + b"\n" for line in out)


def remove(paths: list[Path], subject: Subject, fsync: bool) -> int:
    """Rewrite each file that holds a line of `subject` without it (a new file renamed over
    the old, so a crash leaves one or the other); how many lines went."""
    removed = 0
    for path in paths:
        with open(path, "rb") as file:
            lines = file.readlines()
        kept = [line for line in lines if not subject.matches_data(line)]
        if len(kept) == len(lines):
            continue
        removed += len(lines) - len(kept)
        temporary = path.with_name(path.name + ".rewrite")
        with open(temporary, "wb") as file:
            file.writelines(kept)
            file.flush()
            if fsync:
                os.fsync(file.fileno())
        os.replace(temporary, path)
    return removed
