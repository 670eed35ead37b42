"""The dedupe script on a real server: each messageId of a source lands once per window."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from gateway.constants import dedupe_key, events_key
from gateway.dedupe import Writer
from gateway.embedded import RedisProcess
from gateway.ingest import Entry

STREAM = events_key(3)


MakeWriter = Callable[[int], Writer]


@pytest.fixture
async def writer_for(redis_server: RedisProcess) -> AsyncIterator[MakeWriter]:
    writers: list[Writer] = []

    def make(window: int) -> Writer:
        writers.append(Writer(redis_server.url, window, connect_timeout=5))
        return writers[-1]

    yield make
    for writer in writers:
        await writer.close()


def entry(message_id: str, source: str = "web", data: bytes = b"{}") -> Entry:
    return Entry(STREAM, data, source, message_id)


async def test_each_message_id_of_a_source_is_added_once(
    redis: Redis, writer_for: MakeWriter
) -> None:
    writer = writer_for(3600)
    added = await writer.write([entry("a", data=b"1"), entry("b"), entry("a", data=b"2")])
    assert added == 2
    assert await writer.write([entry("a"), entry("b"), entry("c")]) == 1  # a retry, and one new
    assert await writer.write([entry("a", source="ios")]) == 1  # another source's "a"
    rows = await redis.xrange(STREAM)
    assert [(f[b"source"], f[b"data"]) for _, f in rows] == [
        (b"web", b"1"),
        (b"web", b"{}"),
        (b"web", b"{}"),
        (b"ios", b"{}"),
    ]
    key = dedupe_key(STREAM, "web", "a")
    assert key == "gateway:dedupe:{3}:web:a"  # the stream's hash tag: one cluster slot
    assert 3500 < await redis.ttl(key) <= 3600


async def test_a_server_that_forgot_the_script_gets_it_again(
    redis: Redis, writer_for: MakeWriter
) -> None:
    writer = writer_for(60)
    await writer.write([entry("a")])
    await redis.script_flush()  # as a restart or failover does
    assert await writer.write([entry("a"), entry("b")]) == 1
    assert await redis.xlen(STREAM) == 2


async def test_large_writes_keep_their_order(redis: Redis, writer_for: MakeWriter) -> None:
    writer = writer_for(60)
    batch = [entry(f"m{i}", data=str(i).encode()) for i in range(1000)]
    assert await writer.write(batch) == 1000
    assert [f[b"data"] for _, f in await redis.xrange(STREAM)] == [e.data for e in batch]


async def test_window_zero_turns_dedupe_off(redis: Redis, writer_for: MakeWriter) -> None:
    writer = writer_for(0)
    assert await writer.write([entry("a"), entry("a")]) == 2
    assert await redis.exists(dedupe_key(STREAM, "web", "a")) == 0
