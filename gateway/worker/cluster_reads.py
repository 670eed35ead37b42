"""Reading a group's new entries on a Redis Cluster: one `XREADGROUP` per partition.

One command may not name keys of several slots, and each partition is its own slot, so
the single blocking read over every partition of one Redis becomes one blocking read per
partition, each on its own connection to the partition's master (redis-py's
`RedisCluster` routes it). They run side by side; whichever answer first are handed over,
while the others keep waiting, so a quiet partition does not delay a busy one.

A burst run reads every partition once without blocking instead (pipelined per node), so
that "nothing came" means nothing is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.asyncio import RedisCluster

log = logging.getLogger("gateway.worker")

Entries = list[tuple[bytes, dict[bytes, bytes]]]


class PartitionReads:
    """The blocking reads in flight, one per partition stream."""

    def __init__(
        self, redis: RedisCluster, group: str, consumer: str, count: int, block_ms: int
    ) -> None:
        self._redis = redis
        self._group = group
        self._consumer = consumer
        self._count = count
        self._block_ms = block_ms
        self._reads: dict[str, asyncio.Task[Entries]] = {}

    async def next(self, streams: tuple[str, ...]) -> list[tuple[str, Entries]]:
        """New entries of the partitions that answered first (none after a quiet `block`)."""
        for stream in streams:
            if stream not in self._reads:
                self._reads[stream] = asyncio.create_task(self._read(stream, self._block_ms))
        await asyncio.wait(self._reads.values(), return_when=asyncio.FIRST_COMPLETED)
        got: list[tuple[str, Entries]] = []
        error: BaseException | None = None
        for stream, task in list(self._reads.items()):
            if not task.done():
                continue
            del self._reads[stream]
            exc = task.exception()
            if exc is not None:
                error = error or exc
            elif task.result():
                got.append((stream, task.result()))
        if error is not None and not got:
            raise error
        if error is not None:
            # What the others read is in hand: deliver it; the failed read is tried again.
            log.warning("worker: a partition read failed: %s", error)
        return got

    async def drain(self, streams: tuple[str, ...]) -> list[tuple[str, Entries]]:
        """For a burst run: what is there now; when nothing is, what came after `block`."""
        got = await self._once(streams)
        if not got:
            await asyncio.sleep(self._block_ms / 1000)  # as long as a blocking read would
            got = await self._once(streams)
        return got

    async def _once(self, streams: tuple[str, ...]) -> list[tuple[str, Entries]]:
        pipe = self._redis.pipeline(transaction=False)
        for stream in streams:
            pipe.xreadgroup(self._group, self._consumer, {stream: ">"}, count=self._count)
        replies: list[Any] = await pipe.execute()
        return [
            (stream, entries)
            for stream, reply in zip(streams, replies, strict=True)
            for _, entries in (reply or [])
            if entries
        ]

    async def close(self) -> None:
        """Stop the reads in flight.

        An entry a stopped read had already been handed stays pending for this consumer,
        and another worker reclaims it after `reclaim_idle`, as after a crash.
        """
        for task in self._reads.values():
            task.cancel()
        for task in self._reads.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._reads.clear()

    async def _read(self, stream: str, block_ms: int) -> Entries:
        reply: Any = await self._redis.xreadgroup(
            self._group, self._consumer, {stream: ">"}, count=self._count, block=block_ms
        )
        return [entry for _, entries in (reply or []) for entry in entries]
