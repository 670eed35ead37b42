"""Replay: a background task that moves spooled entries into their streams once Redis is back.

It replays the spool's segments oldest first, in chunks, through the same writer and
dedupe script as live traffic (`gateway.store.dedupe_script`), so an entry Redis took
before the spool did, or a chunk replayed again after a failure or a crash, is not added
twice. A segment is deleted
once all of it is in Redis. While Redis is away it probes it with a backoff, and it also
replays the slots of gateway processes that are gone (`Spool.orphans`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.exceptions import RedisClusterException, RedisError

from gateway.ops import tasks
from gateway.store.redis_client import AnyRedis
from gateway.store.spool import Spool
from gateway.store.spool_format import read_chunk
from gateway.store.writers import EntryWriter

log = logging.getLogger(__name__)

CHUNK_RECORDS = 1000
CHUNK_BYTES = 1024 * 1024
MIN_DELAY = 0.05
MAX_DELAY = 1.0
ORPHAN_INTERVAL = 10.0
"""Seconds between looks for slots of processes that are gone, while idle."""


class Replayer:
    """Drains a spool into Redis whenever it holds something and Redis answers."""

    def __init__(self, redis: AnyRedis, writer: EntryWriter, spool: Spool, timeout: float) -> None:
        self._redis = redis
        self._writer = writer
        self._spool = spool
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self._offsets: dict[str, int] = {}
        self.replayed = 0
        """Entries sent to Redis by replay (duplicates included), for logs and tests."""

    def start(self) -> None:
        """Run in the background until `stop`."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop; what is left in the spool stays there for the next start."""
        if self._task is not None:
            await tasks.cancel(self._task)
            self._task = None

    async def _run(self) -> None:
        delay = MIN_DELAY
        failing = False
        while True:
            if self._spool.empty:
                await self._adopt_orphans()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ORPHAN_INTERVAL):
                        await self._spool.wait_nonempty()
                continue
            try:
                async with asyncio.timeout(self._timeout):
                    await self._redis.ping()
                if failing:
                    log.info("replay: Redis answers again", extra={"event": "redis_up"})
                    failing = False
                await self.drain(self._spool)
            except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
                failing = True
                log.debug("replay: Redis not ready (%s); next try in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, MAX_DELAY)
            except Exception:
                # Never die: a dead replay would leave the spool to fill up unnoticed.
                log.exception("replay failed; trying again in %.2fs", MAX_DELAY)
                await asyncio.sleep(MAX_DELAY)
            else:
                delay = MIN_DELAY

    async def drain(self, spool: Spool) -> None:
        """Replay all of `spool`, including what is appended meanwhile; raises on failure."""
        before = self.replayed
        while True:
            sealed = spool.sealed()
            if not sealed:
                if spool.empty:
                    break
                spool.seal()  # take the active segment too; appends start a new one
                continue
            segment = sealed[0]
            key = str(segment.path)
            offset = self._offsets.get(key, 0)
            while True:
                chunk = await asyncio.to_thread(
                    read_chunk, segment.path, offset, CHUNK_RECORDS, CHUNK_BYTES
                )
                if chunk.entries:
                    async with asyncio.timeout(self._timeout):
                        await self._writer.write(chunk.entries)
                    self.replayed += len(chunk.entries)
                offset = self._offsets[key] = chunk.offset
                if chunk.end:
                    break
            spool.remove(segment)
            del self._offsets[key]
        if self.replayed > before:
            log.info(
                "replay: %d spooled entries are in Redis",
                self.replayed - before,
                extra={"event": "replayed", "entries": self.replayed - before},
            )

    async def _adopt_orphans(self) -> None:
        for directory in self._spool.orphans():
            orphan = Spool.adopt(
                directory, self._spool.max_bytes, self._spool.segment_bytes, self._spool.fsync
            )
            if orphan is None:
                continue  # its process is alive and replays it itself
            log.info(
                "replay: adopting the spool %s of a process that is gone",
                directory,
                extra={"event": "spool_adopted"},
            )
            try:
                await self.drain(orphan)
            except (RedisError, OSError, TimeoutError) as exc:
                log.info("replay: %s must wait (%s)", directory, exc)
            finally:
                await orphan.close()
