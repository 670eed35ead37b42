"""Metrics of `--workers N` processes that add up: prometheus_client's multiprocess mode.

The supervisor makes a fresh directory it owns (under the system's temp directory),
exports it as `PROMETHEUS_MULTIPROC_DIR` to the processes it starts, and removes it
when it exits. Each process writes its counters and histograms to its own files there
(`counter_<pid>.db`, ...); whichever process answers `/metrics` reads and sums them
all. A process that dies leaves its counts behind, so totals never go down when one is
replaced; its live gauges (`gateway_processes`) are dropped (`mark_process_dead`).

prometheus_client picks its storage when it is imported, so the variable must be set
before a process imports it: the supervisor sets it before it spawns the processes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import multiprocess

ENV = "PROMETHEUS_MULTIPROC_DIR"


def current_dir() -> Path | None:
    """The directory this process's metrics are written to; None: in memory, this process."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


@contextlib.contextmanager
def metrics_dir() -> Iterator[Path]:
    """A fresh directory for the processes started inside, exported as `ENV`; then gone."""
    directory = Path(tempfile.mkdtemp(prefix="gateway-metrics-"))
    previous = os.environ.get(ENV)
    os.environ[ENV] = str(directory)
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)


def process_dead(pid: int | None, directory: os.PathLike[str]) -> None:
    """Forget the live gauges of a process that exited (its counts stay)."""
    if pid is not None:
        multiprocess.mark_process_dead(pid, os.fspath(directory))  # type: ignore[no-untyped-call]
