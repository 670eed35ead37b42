"""Group commit: many concurrent requests share one Redis round trip, or one spool write.

Each request hands its entries to the committer and waits. The committer collects what
arrives while the event loop runs the handlers that are ready, then sends all of it as one
pipeline (through the writer, `gateway.store.writers`), and wakes each request when its
entries are durable. While `max_in_flight` pipelines are outstanding, new entries wait for
the next one, so batches grow with the load instead of the round trips.

A pipeline leaves as soon as `flush_at` entries wait (and a pipeline may go), without
waiting for the handlers still ready to run: under load the loop finds many requests
ready at once, and if all of them were sent together, the loop would have nothing to do
until Redis answered them. Sent in parts, Redis works on the first while the loop
validates the rest, and their answers go out (and the clients' next requests come in)
sooner.

When Redis fails or does not answer within `timeout`, the batch is appended to the local
spool instead, and the requests are answered once it is written there. While the spool
holds entries not yet replayed, new batches go to the spool too, behind them, so that no
entry overtakes one accepted before it. Only a full, failing or stalled spool makes a
request fail. Each flush is bounded by `timeout` for Redis and again for the spool.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Sequence

from redis.exceptions import RedisError

from gateway.errors import Code
from gateway.ops.tally import Tally
from gateway.store.entry import Entry
from gateway.store.inspector_ring import Ring
from gateway.store.spool import Spool, SpoolFull
from gateway.store.writers import EntryWriter

log = logging.getLogger(__name__)

Batch = list[tuple[Sequence[Entry], asyncio.Future[None]]]

_NO_REQUEST = contextvars.Context()
"""A flush serves many requests: its log lines carry none's request id (`gateway.ops.logs`)."""


class Unavailable(Exception):
    """The entries could not be made durable."""


class Committer:
    """Makes entries durable, many requests per pipeline: in Redis, else in the spool."""

    def __init__(
        self,
        writer: EntryWriter,
        spool: Spool,
        timeout: float,
        tally: Tally | None = None,
        max_in_flight: int = 4,
        flush_at: int = 16,
        ring: Ring | None = None,
    ) -> None:
        self.spool = spool
        self.tally = tally or Tally()
        self.ring = ring or Ring()
        """The live inspector's: duplicates and spooled entries, while a page is open."""
        self._writer = writer
        self._timeout = timeout
        self._max_in_flight = max_in_flight
        self._flush_at = flush_at
        self._pending: Batch = []
        self._pending_entries = 0
        self._scheduled = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.flushes = 0
        """Pipelines (or spool writes) sent so far: far fewer than requests under load."""
        self.requests = 0
        """Requests whose entries were handed to a flush."""

    async def commit(self, entries: Sequence[Entry]) -> None:
        """Return once every entry is durable; `Unavailable` otherwise."""
        if not entries:
            return  # nothing to wait for (an empty pipeline would get no reply to wake it)
        start = time.perf_counter()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((entries, future))
        self._pending_entries += len(entries)
        if self._pending_entries >= self._flush_at and self._in_flight < self._max_in_flight:
            self._start_flush()
        else:
            self._schedule()
        # No timer per request (it cost more than the rest of the commit): every flush is
        # bounded instead, so a request waits at most for the flushes ahead of it and its own.
        await future
        self.tally.latency.observe(time.perf_counter() - start)

    async def close(self) -> None:
        """Flush what is buffered and wait for the pipelines in flight."""
        while self._pending or self._tasks:
            self._schedule()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            else:
                await asyncio.sleep(0)  # let the scheduled flush start

    def _schedule(self) -> None:
        if not self._scheduled and self._in_flight < self._max_in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush, context=_NO_REQUEST)

    def _start_flush(self) -> None:
        self._scheduled = False
        batch = [(e, f) for e, f in self._pending if not f.done()]
        self._pending = []
        self._pending_entries = 0
        if not batch:
            return
        self._in_flight += 1
        entries = [entry for group, _ in batch for entry in group]
        # Decided when the batch leaves, not when it arrived: once anything is spooled,
        # later batches queue behind it on disk until replay has drained the spool.
        # Sent now, before the task's first step: see the module's doc.
        written = self._writer.write(entries) if self.spool.empty else None
        task = asyncio.create_task(self._flush(batch, entries, written), context=_NO_REQUEST)
        self._tasks.add(task)
        task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight -= 1
        if self._pending:
            self._schedule()

    async def _flush(
        self, batch: Batch, entries: list[Entry], written: Awaitable[int] | None
    ) -> None:
        """Wait for `written` (the entries sent to Redis), else spool the entries."""
        self.flushes += 1
        self.requests += len(batch)
        tally = self.tally
        tally.flush_sizes.observe(len(entries))
        if written is not None:
            try:
                async with asyncio.timeout(self._timeout):
                    added = await written
            except (RedisError, OSError, TimeoutError) as exc:
                # Redis may still have taken some of them (a timeout is not a refusal):
                # the replay's dedupe drops those.
                tally.redis_error(exc)
                log.warning(
                    "Redis did not take %d entries (%s); spooling them",
                    len(entries),
                    str(exc) or type(exc).__name__,
                    extra={"event": "redis_down", "entries": len(entries)},
                )
            else:
                tally.accepted_redis += _settle(batch)
                left_out = len(entries) - added
                tally.duplicates += left_out
                if left_out and self.ring.watching:
                    self.ring.duplicates(entries)
                return
        try:
            # The spool's fsync runs in a thread; a disk that stalls it must not hold the
            # requests forever. They get a 503 then, and their retry is deduplicated even if
            # the entries reach the spool after all.
            async with asyncio.timeout(self._timeout):
                await self.spool.append(entries)
        except (TimeoutError, SpoolFull, OSError) as exc:
            level, event, why = self._spool_failure(exc)
            log.log(
                level,
                "cannot spool %d entries: %s",
                len(entries),
                why,
                extra={"event": event, "entries": len(entries)},
            )
            tally.reject(Code.UNAVAILABLE, _settle(batch, Unavailable(why)))
        else:
            tally.accepted_spool += _settle(batch)
            if self.ring.watching:
                self.ring.note("spooled", entries, "Redis did not take them in time")

    def _spool_failure(self, exc: Exception) -> tuple[int, str, str]:
        """Log level, log event and the 503's reason for a spool that did not take a batch."""
        if isinstance(exc, TimeoutError):  # before OSError: TimeoutError is one
            return (
                logging.ERROR,
                "spool_failed",
                f"neither Redis nor the spool took them within {self._timeout:g}s",
            )
        if isinstance(exc, SpoolFull):
            return logging.WARNING, "spool_full", "Redis is unavailable and the local spool is full"
        return logging.ERROR, "spool_failed", f"Redis is unavailable and the spool failed: {exc}"


def _settle(batch: Batch, error: Unavailable | None = None) -> int:
    """Wake the requests still waiting, failing them with `error` if given; their entries."""
    settled = 0
    for entries, future in batch:
        if not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
            settled += len(entries)
    return settled
