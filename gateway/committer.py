"""Group commit: many concurrent requests share one Redis round trip.

Each request hands its entries to the committer and waits. The committer collects what
arrives while the event loop runs the handlers that are ready, then sends all of it as one
pipeline of `XADD`s, and wakes each request when its own entries are acknowledged, or
fails it when they are not. While `max_in_flight` pipelines are outstanding, new entries
wait for the next one, so batches grow with the load instead of the round trips.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.ingest import Entry

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """The entries could not be made durable in time."""


class Committer:
    """Adds entries to their streams, many requests per pipeline."""

    def __init__(self, redis: Redis, timeout: float, max_in_flight: int = 4) -> None:
        self._redis = redis
        self._timeout = timeout
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[Sequence[Entry], asyncio.Future[None]]] = []
        self._scheduled = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def commit(self, entries: Sequence[Entry]) -> None:
        """Return once Redis has acknowledged every entry; `Unavailable` otherwise."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((entries, future))
        self._schedule()
        try:
            async with asyncio.timeout(self._timeout):
                await future
        except TimeoutError:
            raise Unavailable(f"Redis did not acknowledge within {self._timeout:g}s") from None

    async def close(self) -> None:
        """Wait for the pipelines in flight."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _schedule(self) -> None:
        if not self._scheduled and self._in_flight < self._max_in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._scheduled = False
        batch = [(e, f) for e, f in self._pending if not f.done()]
        self._pending = []
        if not batch:
            return
        self._in_flight += 1
        task = asyncio.create_task(self._flush(batch))
        self._tasks.add(task)
        task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight -= 1
        if self._pending:
            self._schedule()

    async def _flush(self, batch: list[tuple[Sequence[Entry], asyncio.Future[None]]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for entries, _ in batch:
            for entry in entries:
                pipe.xadd(entry.stream, {"data": entry.data, "source": entry.source})
        try:
            results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            log.warning("Redis pipeline of %d requests failed: %s", len(batch), exc)
            _fail(batch, exc)
            return
        position = 0
        for entries, future in batch:
            mine = results[position : position + len(entries)]
            position += len(entries)
            error = next((r for r in mine if isinstance(r, Exception)), None)
            if future.done():
                continue  # the request gave up waiting; its entries are in Redis all the same
            if error is None:
                future.set_result(None)
            else:
                log.warning("Redis refused an entry: %s", error)
                future.set_exception(Unavailable(str(error)))


def _fail(batch: list[tuple[Sequence[Entry], asyncio.Future[None]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(Unavailable(str(exc)))
