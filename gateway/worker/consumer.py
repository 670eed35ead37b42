"""A consumer in a Redis consumer group over every partition stream, at least once.

The loop: reclaim entries left pending past `reclaim_idle` (a dead worker's batch, or a
batch that failed and waits for its retry) with `XAUTOCLAIM`, counting each one's
deliveries; else read new entries with a blocking `XREADGROUP` over every partition (one
read per partition on a cluster: `gateway.worker.cluster_reads`); hand them over in batches
to `gateway.worker.outcomes`, which delivers, acknowledges, leaves for a retry or
dead-letters, while the batch in hand is kept from looking idle. Partitions a gateway
records while it runs are added to what it reads (`gateway.worker.partitions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
from redis.asyncio import RedisCluster
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from gateway.ops import tasks
from gateway.ops.text import as_text as _text
from gateway.store.redis_client import AnyRedis
from gateway.worker import outcomes
from gateway.worker.cluster_reads import PartitionReads
from gateway.worker.dispatch import Dispatcher
from gateway.worker.message import Message
from gateway.worker.options import ConsumerOptions, Stats
from gateway.worker.outcomes import UNREADABLE
from gateway.worker.partitions import PartitionWatch

log = logging.getLogger("gateway.worker")

PROGRESS_EVERY = 10.0
"""Seconds between progress lines in the log."""

Entry = tuple[bytes, dict[bytes, bytes]]


class Consumer:
    """Reads one group over every partition and delivers through a dispatcher."""

    def __init__(self, redis: AnyRedis, options: ConsumerOptions, dispatcher: Dispatcher) -> None:
        self.redis = redis
        self.options = options
        self.dispatcher = dispatcher
        self.stats = Stats(withheld=dispatcher.withheld)
        self.streams = list(options.streams)
        """What it reads: grows when a gateway records more partitions."""
        self._watch = PartitionWatch(redis, self.streams)
        self._last_reclaim = float("-inf")
        self._reclaim_cursor = dict.fromkeys(options.streams, "0-0")
        self._partition_reads = (
            PartitionReads(
                redis, options.group, options.consumer, options.batch_size, self._block_ms()
            )
            if isinstance(redis, RedisCluster)
            else None
        )
        """On a cluster: one read per partition (see `gateway.worker.cluster_reads`)."""

    async def run(self, stop: asyncio.Event) -> Stats:
        """Deliver until `stop` is set (or, in burst mode, until drained)."""
        ready = False
        last_progress = time.monotonic()
        reported = dataclasses.replace(self.stats)
        while not stop.is_set():
            try:
                if not ready:
                    await self.create_groups()
                    ready = True
                if await self._step() is None:
                    break
            except (RedisError, RedisClusterException, OSError) as exc:
                tasks.raise_if_cancelled()  # a cancel redis-py turned into a TimeoutError
                log.warning(
                    "worker: Redis error (%s); trying again in 1s",
                    exc,
                    extra={"event": "redis_down"},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
            if time.monotonic() - last_progress >= PROGRESS_EVERY and self.stats != reported:
                log.info(
                    "worker: %s so far",
                    self.stats.line(),
                    extra={"event": "progress", **dataclasses.asdict(self.stats)},
                )
                reported = dataclasses.replace(self.stats)
                last_progress = time.monotonic()
        if self._partition_reads is not None:
            await self._partition_reads.close()
        with contextlib.suppress(RedisError, OSError):
            await self._leave()
        return self.stats

    async def create_groups(self, streams: Sequence[str] | None = None) -> None:
        """Create the group on every stream (and the stream) where it is missing.

        From id 0: whatever was enqueued before the first worker started is delivered too.
        """
        for stream in self.streams if streams is None else streams:
            try:
                await self.redis.xgroup_create(stream, self.options.group, id="0", mkstream=True)
                log.info("worker: created group %s on %s", self.options.group, stream)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _step(self) -> bool | None:
        """One read or reclaim and its delivery; None when a burst run is done."""
        new = await self._watch.new_streams()
        if new:
            await self.create_groups(new)
            self.streams.extend(new)
            self._reclaim_cursor.update(dict.fromkeys(new, "0-0"))
        messages: list[Message] = []
        if time.monotonic() - self._last_reclaim >= self._reclaim_every():
            messages = await self._reclaim()
        if not messages:
            messages = await self._read()
        if messages:
            await self._handle(messages)
            return True
        if self.options.burst and await self._pending() == 0:
            return None
        return False

    def _reclaim_every(self) -> float:
        return min(self.options.reclaim_idle / 2, 5.0)

    async def _reclaim(self) -> list[Message]:
        idle_ms = max(1, int(self.options.reclaim_idle * 1000))
        claimed: list[tuple[str, Entry]] = []
        full = False
        for stream in self.streams:
            want = self.options.batch_size - len(claimed)
            if want <= 0:
                full = True
                break
            reply = await self.redis.xautoclaim(
                stream,
                self.options.group,
                self.options.consumer,
                idle_ms,
                start_id=self._reclaim_cursor[stream],
                count=want,
            )
            cursor, entries = reply[0], reply[1]
            self._reclaim_cursor[stream] = _text(cursor)
            if self._reclaim_cursor[stream] != "0-0":
                full = True  # more to scan in this stream: come back at once
            claimed.extend((stream, entry) for entry in entries if entry[1] is not None)
        if not full:
            self._last_reclaim = time.monotonic()
        if not claimed:
            return []
        attempts = await self._delivery_counts([(s, _text(e[0])) for s, e in claimed])
        self.stats.reclaimed += len(claimed)
        log.info(
            "worker: reclaimed %d entries idle for %gs or more",
            len(claimed),
            self.options.reclaim_idle,
        )
        return [
            _message(stream, entry, count)
            for (stream, entry), count in zip(claimed, attempts, strict=True)
        ]

    async def _delivery_counts(self, keys: Sequence[tuple[str, str]]) -> list[int]:
        pipe = self.redis.pipeline(transaction=False)
        for stream, entry_id in keys:
            pipe.xpending_range(stream, self.options.group, entry_id, entry_id, 1)
        replies = await pipe.execute()
        return [int(reply[0]["times_delivered"]) if reply else 1 for reply in replies]

    def _block_ms(self) -> int:
        return max(1, int(self.options.block * 1000))

    async def _read(self) -> list[Message]:
        reads = self._partition_reads
        if reads is not None:
            streams = tuple(self.streams)
            got = await (reads.drain(streams) if self.options.burst else reads.next(streams))
            return [_message(stream, entry, 1) for stream, entries in got for entry in entries]
        reply: Any = await self.redis.xreadgroup(
            self.options.group,
            self.options.consumer,
            dict.fromkeys(self.streams, ">"),
            count=self.options.batch_size,
            block=self._block_ms(),
        )
        return [
            _message(_text(stream), entry, 1)
            for stream, entries in reply or []
            for entry in entries
        ]

    async def _pending(self) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for stream in self.streams:
            pipe.xpending(stream, self.options.group)
        return sum(int(summary["pending"]) for summary in await pipe.execute())

    async def _handle(self, messages: list[Message]) -> None:
        size = self.options.batch_size
        # A read over several partitions can hand over more than one batch: keep all of it
        # claimed until the last batch is done.
        async with self._keep_claimed(messages):
            for start in range(0, len(messages), size):
                await outcomes.deliver(
                    self.redis,
                    self.options,
                    self.dispatcher,
                    messages[start : start + size],
                    self.stats,
                )

    @contextlib.asynccontextmanager
    async def _keep_claimed(self, batch: Sequence[Message]) -> AsyncIterator[None]:
        """While the entries are being sent, keep them from looking idle.

        A slow destination (retrying in place) could otherwise hold a batch past
        `reclaim_idle`, and another worker would send it again while this one still is.
        """
        if not batch:
            yield
            return
        async with tasks.running(self._heartbeat(batch)):
            yield

    async def _heartbeat(self, batch: Sequence[Message]) -> None:
        by_stream: dict[str, list[str | bytes | int | memoryview]] = {}
        for message in batch:
            by_stream.setdefault(message.stream, []).append(message.id)
        while True:
            await asyncio.sleep(self.options.reclaim_idle / 3)
            try:
                for stream, ids in by_stream.items():
                    # JUSTID: resets the idle time without counting a delivery.
                    await self.redis.xclaim(
                        stream, self.options.group, self.options.consumer, 0, ids, justid=True
                    )
            except (RedisError, OSError) as exc:
                log.warning("worker: could not refresh the batch in hand: %s", exc)

    async def _leave(self) -> None:
        """Remove this consumer from the group if it holds nothing (no clutter)."""
        pipe = self.redis.pipeline(transaction=False)
        for stream in self.streams:
            pipe.xpending_range(stream, self.options.group, "-", "+", 1, self.options.consumer)
        if any(await pipe.execute()):
            return
        pipe = self.redis.pipeline(transaction=False)
        for stream in self.streams:
            pipe.xgroup_delconsumer(stream, self.options.group, self.options.consumer)
        await pipe.execute()


_decode = msgspec.json.Decoder().decode


def _message(stream: str, entry: Entry, attempt: int) -> Message:
    entry_id, fields = entry
    data = fields.get(b"data", b"")
    try:
        body = _decode(data)
    except msgspec.DecodeError:
        body = UNREADABLE
    if not isinstance(body, dict):
        body = UNREADABLE
    return Message(
        stream=stream,
        id=_text(entry_id),
        data=data,
        body=body,
        source=fields.get(b"source", b"").decode(errors="replace"),
        attempt=attempt,
    )
