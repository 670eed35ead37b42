"""`python -m gateway ...` as asyncio subprocesses: start, wait for a log line, finish, kill."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.ops.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
"""The worktree: subprocesses import its `gateway`."""


def env() -> dict[str, str]:
    """The environment of a subprocess: this worktree's `gateway`, no stray GATEWAY_*."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    clean["PYTHONPATH"] = str(ROOT)
    return clean


async def start(*args: str) -> asyncio.subprocess.Process:
    """`python -m gateway ARGS` with its output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        cwd=ROOT,
        env=env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process, limit: float = 60) -> tuple[int, str, str]:
    """Wait for the process (killing it past `limit` seconds); exit code, stdout, stderr."""
    assert process.stdout is not None
    assert process.stderr is not None
    reads = asyncio.gather(process.stdout.read(), process.stderr.read())
    try:
        await asyncio.wait_for(process.wait(), limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        _, err = await reads
        raise AssertionError(f"did not exit within {limit}s; stderr:\n{err.decode()}") from None
    out, err = await reads
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def gateway(*args: str, limit: float = 20) -> tuple[int, str, str]:
    """Run `python -m gateway ARGS` to the end."""
    return await finish(await start(*args), limit)


async def wait_for_line(process: asyncio.subprocess.Process, text: str, limit: float = 30) -> str:
    """Read the process's stderr until a line contains `text`; the lines read."""
    assert process.stderr is not None
    seen: list[str] = []

    async def scan() -> None:
        while True:
            line = (await process.stderr.readline()).decode()  # type: ignore[union-attr]
            if not line:
                raise AssertionError(f"exited before logging {text!r}:\n{''.join(seen)}")
            seen.append(line)
            if text in line:
                return

    await asyncio.wait_for(scan(), limit)
    return "".join(seen)


def kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL, as a crash would."""
    process.send_signal(signal.SIGKILL)


@contextlib.asynccontextmanager
async def serving(redis_url: str, data_dir: Path, *args: str) -> AsyncIterator[str]:
    """`gateway serve --workers 1 ARGS` on free ports; yields its base URL once it answers.

    Its log is read all along (a full pipe would stop it), and it is stopped on the way out.
    """
    port = free_port()
    process = await start("serve", "--workers", "1", "--redis-url", redis_url, "--port",
                          str(port), "--admin-port", str(free_port()), "--data-dir",
                          str(data_dir), *args)  # fmt: skip
    drained: asyncio.Task[bytes] | None = None
    try:
        await wait_for_line(process, "listening on")
        assert process.stderr is not None
        drained = asyncio.create_task(process.stderr.read())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
        if drained is not None:
            await drained
