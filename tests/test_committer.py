"""The group commit on a real server: how entries of concurrent requests leave in pipelines."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from pathlib import Path

from redis.asyncio import Redis

from gateway.constants import events_key
from gateway.ops.embedded import RedisProcess
from gateway.store.committer import Committer
from gateway.store.entry import Entry
from gateway.store.node_writer import NodeWriter
from gateway.store.spool import Spool


class Recording:
    """A real writer that notes how many entries each pipeline carried."""

    def __init__(self, writer: NodeWriter) -> None:
        self.writer = writer
        self.sizes: list[int] = []

    def write(self, entries: Sequence[Entry]) -> Awaitable[int]:
        self.sizes.append(len(entries))
        return self.writer.write(entries)

    async def close(self) -> None:
        await self.writer.close()


async def test_a_pipeline_leaves_once_flush_at_entries_wait(
    redis_server: RedisProcess, redis: Redis, tmp_path: Path
) -> None:
    writer = Recording(NodeWriter(redis_server.url, 60, connect_timeout=5))
    spool = Spool.open(tmp_path, 1 << 20, 1 << 16, "always")
    committer = Committer(writer, spool, timeout=5, flush_at=4)
    stream = events_key(0)

    def entry(n: int) -> Entry:
        return Entry(stream, b"{}", "web", f"m{n}")

    # Ten requests ready in the same pass of the loop: the first four leave as soon as
    # they are there, the next four too, and the last two when the pass is over.
    await asyncio.gather(*(committer.commit((entry(n),)) for n in range(10)))
    assert writer.sizes == [4, 4, 2]
    assert await redis.xlen(stream) == 10
    # While as many pipelines as allowed are in flight, entries wait for the next one.
    writer.sizes.clear()
    await asyncio.gather(*(committer.commit((entry(n),)) for n in range(10, 40)))
    assert writer.sizes[:4] == [4, 4, 4, 4]
    assert sum(writer.sizes) == 30
    assert len(writer.sizes) < 8
    assert await redis.xlen(stream) == 40
    await committer.close()
    await spool.close()
    await writer.close()
