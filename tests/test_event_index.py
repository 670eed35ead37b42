"""The dedupe script's seen hashes, read back as the admin API reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.constants import REJECTED_STREAM, events_key
from gateway.ops.embedded import RedisProcess
from gateway.store import event_index
from gateway.store.dedupe_script import bucket_seconds
from gateway.store.entry import Entry
from gateway.store.node_writer import NodeWriter
from tests.helpers.streams import read_stream

STREAMS = [events_key(0), events_key(1)]
SOURCES = ["web", "my source", "ios"]


@pytest.fixture
async def writer(redis_server: RedisProcess) -> AsyncIterator[NodeWriter]:
    writer = NodeWriter(redis_server.url, 3600, connect_timeout=5)
    yield writer
    await writer.close()


async def find(
    redis: Redis, message_id: str, sources: list[str] = SOURCES
) -> event_index.Where | None:
    return await event_index.find(redis, message_id, STREAMS, 3600, sources)


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

    found = [await find(redis, m) for m in ("m-1", "m-2", "m-3")]

    assert found == [
        event_index.Where(STREAMS[0], ids[0][0], "/v1/track", "web"),
        event_index.Where(STREAMS[1], ids[1][0], "/v1/batch", "web"),
        event_index.Where(STREAMS[1], ids[1][1], "", "my source"),
    ]
    assert await find(redis, "m-4") is None
    assert await find(redis, "m-1", ["ios"]) is None  # only the sources asked for


async def test_a_duplicate_keeps_the_first_entry_and_another_source_wins_as_newer(
    redis: Redis, writer: NodeWriter
) -> None:
    await writer.write([Entry(STREAMS[0], b"1", "web", "m-1", "/v1/track")])
    await writer.write([Entry(STREAMS[0], b"2", "web", "m-1", "/v1/t")])  # a retry: dropped
    [(first, _)] = await read_stream(redis, STREAMS[0])
    where = await find(redis, "m-1")
    assert where == event_index.Where(STREAMS[0], first.decode(), "/v1/track", "web")

    await writer.write([Entry(STREAMS[1], b"3", "ios", "m-1", "/v1/track")])
    [(second, _)] = await read_stream(redis, STREAMS[1])
    assert await find(redis, "m-1") == event_index.Where(
        STREAMS[1], second.decode(), "/v1/track", "ios"
    )
    # Both are kept: each is found under its own source.
    assert await find(redis, "m-1", ["web"]) == where


async def test_the_newest_of_two_sources_is_answered_whichever_is_asked_first(
    redis: Redis, writer: NodeWriter
) -> None:
    # Same stream, same chunk: the later entry id is the newer, not the later source.
    await writer.write(
        [
            Entry(STREAMS[0], b"1", "ios", "m-1", "/v1/track"),
            Entry(STREAMS[0], b"2", "web", "m-1", "/v1/batch"),
        ]
    )
    [(_, _), (newer, _)] = await read_stream(redis, STREAMS[0])
    expected = event_index.Where(STREAMS[0], newer.decode(), "/v1/batch", "web")
    assert await find(redis, "m-1", ["ios", "web"]) == expected
    assert await find(redis, "m-1", ["web", "ios"]) == expected


async def test_a_bucket_holds_exactly_the_accepted_messages_and_their_entries(
    redis: Redis, writer: NodeWriter
) -> None:
    await writer.write(
        [
            Entry(STREAMS[0], b"1", "web", "m-1", "/v1/track"),
            Entry(STREAMS[0], b"2", "web", "m-1", "/v1/track"),  # the same id twice: dropped
            Entry(STREAMS[0], b"3", "ios", "m-1", "/v1/batch"),
            Entry(STREAMS[0], b"4", "web", "m-2"),
            Entry(REJECTED_STREAM, b"5", "web", ""),  # no messageId: no state
        ]
    )
    ids = [i for i, _ in await read_stream(redis, STREAMS[0])]
    now = (await redis.time())[0]
    span = bucket_seconds(3600)
    key = f"gateway:seen:{{0}}:{now // span}"
    # One structure beside the streams: the partition's hash of the current bucket.
    keys = {k.decode() async for k in redis.scan_iter("*")}
    assert keys == {STREAMS[0], REJECTED_STREAM, key}
    assert await redis.hgetall(key) == {
        b"web:m-1": ids[0] + b" /v1/track",
        b"ios:m-1": ids[1] + b" /v1/batch",
        b"web:m-2": ids[2] + b" -",
    }
    # The bucket is remembered a window after it ends.
    assert await redis.expiretime(key) == (now // span + 1) * span + 3600


async def test_nothing_is_kept_without_dedupe(redis_server: RedisProcess, redis: Redis) -> None:
    writer = NodeWriter(redis_server.url, 0, connect_timeout=5)
    try:
        await writer.write([Entry(STREAMS[0], b"{}", "web", "m-1", "/v1/track")])
    finally:
        await writer.close()
    assert [k async for k in redis.scan_iter("gateway:seen:*")] == []
    assert await event_index.find(redis, "m-1", STREAMS, 0, SOURCES) is None
