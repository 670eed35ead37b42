"""The messageId index the dedupe script writes, read back as the admin API reads it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.constants import events_key
from gateway.ops.embedded import RedisProcess
from gateway.store import event_index
from gateway.store.entry import Entry
from gateway.store.node_writer import NodeWriter
from tests.helpers.streams import read_stream

STREAMS = [events_key(0), events_key(1)]


@pytest.fixture
async def writer(redis_server: RedisProcess) -> AsyncIterator[NodeWriter]:
    writer = NodeWriter(redis_server.url, 3600, connect_timeout=5)
    yield writer
    await writer.close()


async def test_each_added_entry_is_found_by_its_message_id(
    redis: Redis, writer: NodeWriter
) -> None:
    await writer.write(
        [
            Entry(STREAMS[0], b"{}", "web", "m-1", "/v1/track"),
            Entry(STREAMS[1], b"{}", "web", "m-2", "/v1/batch"),
            Entry(STREAMS[1], b"{}", "my source", "m-3"),  # no route known
        ]
    )
    ids = [[i.decode() for i, _ in await read_stream(redis, s)] for s in STREAMS]

    found = [await event_index.find(redis, m, STREAMS, 3600) for m in ("m-1", "m-2", "m-3")]

    assert found == [
        event_index.Where(STREAMS[0], ids[0][0], "/v1/track", "web"),
        event_index.Where(STREAMS[1], ids[1][0], "/v1/batch", "web"),
        event_index.Where(STREAMS[1], ids[1][1], "", "my source"),
    ]
    assert await event_index.find(redis, "m-4", STREAMS, 3600) is None


async def test_a_duplicate_keeps_the_first_entry_and_another_source_wins_as_newer(
    redis: Redis, writer: NodeWriter
) -> None:
    await writer.write([Entry(STREAMS[0], b"1", "web", "m-1", "/v1/track")])
    await writer.write([Entry(STREAMS[0], b"2", "web", "m-1", "/v1/t")])  # a retry: dropped
    [(first, _)] = await read_stream(redis, STREAMS[0])
    where = await event_index.find(redis, "m-1", STREAMS, 3600)
    assert where == event_index.Where(STREAMS[0], first.decode(), "/v1/track", "web")

    await writer.write([Entry(STREAMS[1], b"3", "ios", "m-1", "/v1/track")])
    where = await event_index.find(redis, "m-1", STREAMS, 3600)
    assert where is not None
    assert (where.stream, where.source) == (STREAMS[1], "ios")


async def test_nothing_is_indexed_without_dedupe(redis_server: RedisProcess, redis: Redis) -> None:
    writer = NodeWriter(redis_server.url, 0, connect_timeout=5)
    try:
        await writer.write([Entry(STREAMS[0], b"{}", "web", "m-1", "/v1/track")])
    finally:
        await writer.close()
    assert [k async for k in redis.scan_iter("gateway:where:*")] == []
    assert await event_index.find(redis, "m-1", STREAMS, 0) is None


async def test_the_index_expires_with_the_dedupe_sets(redis: Redis, writer: NodeWriter) -> None:
    await writer.write([Entry(STREAMS[0], b"{}", "web", "m-1", "/v1/track")])
    [index] = [k async for k in redis.scan_iter("gateway:where:*")]
    [dedupe] = [k async for k in redis.scan_iter("gateway:dedupe:*")]
    assert index.startswith(b"gateway:where:{0}:")
    assert await redis.expiretime(index) == await redis.expiretime(dedupe) > 0
