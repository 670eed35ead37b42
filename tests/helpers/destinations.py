"""Destinations for the worker tests: an HTTP server that collects, and an in-process list."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.worker.destinations import Destination, Failure, Result
from gateway.worker.message import Message


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
