"""Helpers of the worker tests: a destination HTTP server, and `gateway` subprocesses."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.ops.embedded import free_port
from gateway.worker.destinations import Destination, Failure, Result
from gateway.worker.message import Message

ROOT = Path(__file__).resolve().parent.parent


class Collector:
    """An HTTP destination: records what it accepts, per path, and misbehaves on demand."""

    def __init__(self) -> None:
        self.accepted: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        self.by_worker: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        self.headers: list[dict[str, str]] = []
        self.requests = 0
        self.fail_next = 0
        """Answer this many requests with a 500 (and `Retry-After: 0`)."""
        self.reject: set[str] = set()
        """messageIds refused as item errors of a 207, as the gateway itself answers."""
        self.hold: asyncio.Event | None = None
        """When set to an Event, each request waits for it before being answered."""
        self.arrived = asyncio.Event()
        self.server: TestServer | None = None

    async def start(self) -> str:
        """Listen on 127.0.0.1; the base URL."""
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("")).rstrip("/")

    async def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self.server is not None:
            await self.server.close()

    def ids(self, path: str = "/") -> list[str]:
        """The messageIds accepted on `path`, in arrival order (duplicates kept)."""
        return [m["messageId"] for m in self.accepted[path]]

    async def _handle(self, request: web.Request) -> web.Response:
        body = msgspec.json.decode(await request.read())
        self.requests += 1
        self.headers.append(dict(request.headers))
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({"error": "down"}, status=500, headers={"Retry-After": "0"})
        assert isinstance(body["sentAt"], str)
        errors = []
        for index, message in enumerate(body["batch"]):
            if message.get("messageId") in self.reject:
                errors.append({"Index": index, "Error": "Bad Request", "Message": "refused"})
            else:
                self.accepted[request.path].append(message)
                self.by_worker[request.headers.get("X-Worker", "")].append(message)
        if errors:
            accepted = len(body["batch"]) - len(errors)
            return web.json_response(
                {"Success": False, "Accepted": accepted, "Errors": errors}, status=207
            )
        return web.json_response({"success": True})


class ListDestination(Destination):
    """An in-process destination: keeps what it accepts; refuses while `failing` is set,
    and the first `fail_times` batches."""

    def __init__(
        self, name: str, failing: bool = False, retry: bool = True, fail_times: int = 0
    ) -> None:
        super().__init__(name)
        self.failing = failing
        self.retry = retry
        self.fail_times = fail_times
        self.received: list[Message] = []

    async def send(self, batch: Sequence[Message]) -> Result:
        if self.failing or self.fail_times > 0:
            self.fail_times -= 1
            return Result({i: Failure("refused", self.retry) for i in range(len(batch))})
        self.received.extend(batch)
        return Result()

    def ids(self) -> list[str]:
        """The messageIds received, in order."""
        return [m.body["messageId"] for m in self.received]


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


async def eventually(check: Callable[[], Awaitable[bool]], attempts: int = 400) -> None:
    """Wait (bounded) until `check()` is true."""
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the condition never became true")


@contextlib.asynccontextmanager
async def serving(redis_url: str, data_dir: Path, *args: str) -> AsyncIterator[str]:
    """`gateway serve --workers 1 ARGS` as a subprocess; yields its base URL once it answers.

    Its log is read all along (a full pipe would stop it), and it is stopped on the way out.
    """
    port = free_port()
    process = await start("serve", "--workers", "1", "--redis-url", redis_url, "--port",
                          str(port), "--data-dir", str(data_dir), *args)  # fmt: skip
    drained: asyncio.Task[bytes] | None = None
    try:
        await wait_for_line(process, "listening on")
        drained = asyncio.create_task(process.stderr.read())  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
        if drained is not None:
            await drained
