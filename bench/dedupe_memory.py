"""What the dedupe script's seen hashes cost in Redis memory, measured on the embedded server.

Writes N messages through `gateway.store.node_writer.NodeWriter` twice, once with dedupe off
and once on, and prints the difference in `used_memory` per million messages, and
`MEMORY USAGE` of the bucket's hash (which also answers the admin API's event lookup).
Run: `python bench/dedupe_memory.py [N]`; results go in docs/durability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from redis.asyncio import Redis

from gateway.constants import events_key, seen_prefix
from gateway.ops.embedded import RedisProcess
from gateway.store.entry import Entry
from gateway.store.node_writer import NodeWriter

DATA = b'{"type":"track","event":"Order Completed","userId":"user-1234","properties":{}}'


async def used_memory(redis: Redis, url: str, count: int, window: int) -> int:
    await redis.flushall()
    before = int((await redis.info("memory"))["used_memory"])
    writer = NodeWriter(url, window, connect_timeout=5)
    stream = events_key(0)
    for start in range(0, count, 5000):
        batch = [
            Entry(stream, DATA, "web", str(uuid.uuid4())) for _ in range(min(5000, count - start))
        ]
        await writer.write(batch)
    await writer.close()
    return int((await redis.info("memory"))["used_memory"]) - before


@contextlib.asynccontextmanager
async def embedded() -> AsyncIterator[tuple[RedisProcess, Redis]]:
    """A throwaway embedded server (no fsync), and a client of it."""
    with tempfile.TemporaryDirectory() as directory:
        server = RedisProcess(Path(directory), appendfsync="no")
        server.start()
        redis = Redis.from_url(server.url)
        try:
            yield server, redis
        finally:
            await redis.aclose()
            server.stop()


async def main(count: int) -> None:
    async with embedded() as (server, redis):
        info = await redis.info("server")
        stream_only = await used_memory(redis, server.url, count, 0)
        with_hashes = await used_memory(redis, server.url, count, 3600)
        hashes = [key async for key in redis.scan_iter(f"{seen_prefix(events_key(0))}*")]
        in_hashes = 0
        for key in hashes:
            in_hashes += await redis.memory_usage(key, samples=0) or 0
    per_million = (with_hashes - stream_only) * 1_000_000 / count
    version = info.get("valkey_version") or info["redis_version"]
    print(f"server: {info.get('server_name', 'redis')} {version}")
    field = f"web:{uuid.uuid4()}"
    print(f"messages: {count}; field: {field!r} ({len(field)} bytes); hashes: {len(hashes)}")
    print(f"stream only: {stream_only / count:.1f} B/message")
    print(f"seen hashes: {(with_hashes - stream_only) / count:.1f} B/message")
    print(f"dedupe per million messages in the window: {per_million / 2**20:.1f} MiB")
    print(f"MEMORY USAGE of the hashes: {in_hashes / count:.1f} B/message")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
