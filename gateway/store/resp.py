"""A lean pipelined Redis connection for the hot path.

Each flush of the group commit (`gateway.store.committer`) is one pipeline of dedupe
script calls (`EVALSHA`), one call per chunk of up to 256 entries of a partition, each
entry three of its arguments (`gateway.store.dedupe_script`). redis-py's pipeline spends
tens of µs of Python per command building and parsing it, and more per argument; this
connection writes commands the caller encoded once as RESP (`command`) and parses the
replies with hiredis (the C parser redis-py itself uses). When the hot path still sent
one `XADD` per message, that made a command about 4x cheaper (docs/performance.md).
Several pipelines may be in flight on it at once; Redis answers them in order.

It is deliberately small: one connection, commands in, replies out. Anything beyond the
hot path (health checks, replays, workers) uses redis-py.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from typing import Any, cast

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url


class RespError(ConnectionError):
    """The connection failed; whatever was in flight on it has an unknown outcome."""


def command(*args: bytes) -> bytes:
    """One command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        # Not `b"$%d\r\n%s\r\n" % ...`: that copies each argument (the message) once more.
        parts += (b"$%d\r\n" % len(arg), arg, b"\r\n")
    return b"".join(parts)


class _Batch:
    __slots__ = ("future", "remaining", "replies")

    def __init__(self, count: int, future: asyncio.Future[list[Any]]) -> None:
        self.remaining = count
        self.replies: list[Any] = []
        self.future = future


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.waiting: collections.deque[_Batch] = collections.deque()
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        while waiting:
            reply = self.reader.gets()
            if reply is False:
                return
            batch = waiting[0]
            batch.replies.append(reply)
            batch.remaining -= 1
            if batch.remaining == 0:
                waiting.popleft()
                if not batch.future.done():
                    batch.future.set_result(batch.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or RespError("Redis closed the connection")
        self.fail(self.lost)

    def fail(self, exc: BaseException) -> None:
        while self.waiting:
            batch = self.waiting.popleft()
            if not batch.future.done():
                batch.future.set_exception(RespError(str(exc) or type(exc).__name__))


class RespConnection:
    """One connection to the Redis of `url`, for pipelines of pre-encoded commands."""

    def __init__(self, protocol: _Protocol) -> None:
        self._protocol = protocol

    @classmethod
    async def open(cls, url: str, connect_timeout: float) -> RespConnection:
        """Connect, authenticate and select the database of `url`, within `connect_timeout`."""
        options = parse_url(url)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(connect_timeout):
            if "path" in options:
                _, protocol = await loop.create_unix_connection(_Protocol, options["path"])
            else:
                context = (
                    ssl.create_default_context()
                    if options.get("connection_class") is SSLConnection
                    else None
                )
                _, protocol = await loop.create_connection(
                    _Protocol,
                    options.get("host", "localhost"),
                    options.get("port", 6379),
                    ssl=context,
                )
            connection = cls(protocol)
            setup = []
            if options.get("password"):
                credentials = [options["password"].encode()]
                if options.get("username"):
                    credentials.insert(0, options["username"].encode())
                setup.append(command(b"AUTH", *credentials))
            if options.get("db"):
                setup.append(command(b"SELECT", str(options["db"]).encode()))
            if setup:
                for reply in await connection.execute(b"".join(setup), len(setup)):
                    if isinstance(reply, hiredis.ReplyError):
                        connection.close()
                        raise RespError(f"Redis refused the connection setup: {reply}")
        return connection

    @property
    def closed(self) -> bool:
        """True once the connection failed or was closed: open a new one."""
        transport = self._protocol.transport
        return self._protocol.lost is not None or transport is None or transport.is_closing()

    async def execute(self, payload: bytes, count: int) -> list[Any]:
        """Send `count` encoded commands; their replies, in order.

        A reply that is an error is a `hiredis.ReplyError` in the list, not raised.
        """
        return await self.replies(self.send(payload, count))

    def send(self, payload: bytes, count: int) -> asyncio.Future[list[Any]]:
        """Write `count` encoded commands now; the future of their replies (see `replies`)."""
        protocol = self._protocol
        if self.closed or protocol.transport is None:
            raise RespError("the connection is closed")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        protocol.waiting.append(_Batch(count, future))
        protocol.transport.write(payload)
        return future

    async def replies(self, sent: asyncio.Future[list[Any]]) -> list[Any]:
        """The replies of what `send` sent, in order."""
        try:
            return await sent
        except asyncio.CancelledError:
            # The replies of what was sent will still come, out of step with whoever
            # waits next: this connection cannot be trusted any more.
            self.close()
            raise

    def close(self) -> None:
        """Close, failing whatever is in flight."""
        protocol = self._protocol
        if protocol.lost is None:
            protocol.lost = RespError("the connection was closed")
        protocol.fail(protocol.lost)
        if protocol.transport is not None:
            protocol.transport.close()
