"""The dedupe script on a real server: each messageId of a source lands once per window."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from gateway.constants import events_key, seen_prefix
from gateway.ops.embedded import RedisProcess
from gateway.store.dedupe_script import bucket_seconds
from gateway.store.entry import Entry
from gateway.store.node_writer import NodeWriter
from tests.helpers.streams import read_stream

STREAM = events_key(3)


MakeWriter = Callable[[int], NodeWriter]


@pytest.fixture
async def writer_for(redis_server: RedisProcess) -> AsyncIterator[MakeWriter]:
    writers: list[NodeWriter] = []

    def make(window: int) -> NodeWriter:
        writers.append(NodeWriter(redis_server.url, window, connect_timeout=5))
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
    rows = await read_stream(redis, STREAM)
    assert [(f[b"source"], f[b"data"]) for _, f in rows] == [
        (b"web", b"1"),
        (b"web", b"{}"),
        (b"web", b"{}"),
        (b"ios", b"{}"),
    ]
    keys = [key.decode() async for key in redis.scan_iter("gateway:seen:*")]
    now = (await redis.time())[0]
    span = bucket_seconds(3600)
    assert keys == [f"gateway:seen:{{3}}:{now // span}"]  # the stream's hash tag: one slot
    assert set(await redis.hkeys(keys[0])) == {b"web:a", b"web:b", b"web:c", b"ios:a"}
    # The bucket is remembered a window after it ends: an id for 3600 to 4500 seconds.
    assert 3600 - 5 < await redis.ttl(keys[0]) <= 3600 + span


async def test_an_id_is_remembered_for_the_window_and_no_longer(
    redis: Redis, writer_for: MakeWriter
) -> None:
    window = 80
    span = bucket_seconds(window)
    assert span == 20
    now = (await redis.time())[0]
    oldest = (now - window) // span  # the oldest bucket that overlaps the window
    prefix = seen_prefix(STREAM)
    await redis.hset(f"{prefix}{oldest}", "web:recent", "1-0 /v1/track")
    await redis.hset(f"{prefix}{oldest - 1}", "web:expired", "1-0 /v1/track")
    writer = writer_for(window)
    assert await writer.write([entry("recent"), entry("expired")]) == 1
    assert [f[b"data"] for _, f in await read_stream(redis, STREAM)] == [b"{}"]


async def test_an_entry_redis_refuses_is_not_marked_as_seen(
    redis: Redis, writer_for: MakeWriter
) -> None:
    writer = writer_for(3600)
    await redis.set(STREAM, "not a stream")  # every XADD fails
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await writer.write([entry("a"), entry("b")])
    await redis.delete(STREAM)
    assert await writer.write([entry("a"), entry("b")]) == 2  # not taken for duplicates


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
    assert [f[b"data"] for _, f in await read_stream(redis, STREAM)] == [e.data for e in batch]


async def test_window_zero_turns_dedupe_off(redis: Redis, writer_for: MakeWriter) -> None:
    writer = writer_for(0)
    assert await writer.write([entry("a"), entry("a")]) == 2
    assert [key async for key in redis.scan_iter("gateway:seen:*")] == []


async def test_the_pipeline_leaves_before_write_is_awaited(
    redis: Redis, writer_for: MakeWriter
) -> None:
    writer = writer_for(60)
    await writer.write([entry("connect")])
    written = writer.write([entry("a")])
    # Nothing runs `written` until it is awaited: the entry arrives all the same.
    for _ in range(1000):
        if await redis.xlen(STREAM) == 2:
            break
        await asyncio.sleep(0.01)
    assert await redis.xlen(STREAM) == 2
    assert await written == 1
