"""The app's resources: each started and closed by its own cleanup context, so a start that
fails half-way leaves nothing open."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from gateway.app import RUNNER_OPTIONS, create_app
from gateway.ops.embedded import RedisProcess
from gateway.settings import Settings


def _sockets() -> int:
    """Sockets this process has open."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile (the listing's own descriptor)
            count += os.readlink(fd).startswith("socket:")
    return count


async def _start(runner: web.AppRunner) -> None:
    """As `gateway serve` (and aiohttp's `run_app`) do: the runner is cleaned up either way."""
    try:
        await runner.setup()
    finally:
        await runner.cleanup()


def _file_in_the_way(data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / "spool").write_text("not a directory")


def _read_only(data_dir: Path) -> None:
    data_dir.mkdir(mode=0o500)


@pytest.mark.parametrize(
    "unusable",
    [
        _file_in_the_way,
        pytest.param(
            _read_only,
            marks=pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere"),
        ),
    ],
)
async def test_an_unusable_spool_fails_the_start_and_leaves_nothing_open(
    redis_server: RedisProcess, tmp_path: Path, unusable: Callable[[Path], None]
) -> None:
    data_dir = tmp_path / "data"
    unusable(data_dir)
    settings = Settings.load(environ={}, redis_url=redis_server.url, data_dir=data_dir)
    before = _sockets()
    runner = web.AppRunner(create_app(settings), **RUNNER_OPTIONS)
    spool = re.escape(str(data_dir / "spool"))
    with pytest.raises(OSError, match=f"cannot keep the spool under {spool}: "):
        await _start(runner)
    assert asyncio.all_tasks() == {asyncio.current_task()}  # no push, no replay running
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert _sockets() == before  # the writer's and the health client's connections closed
