"""What landed in a Redis stream, read back as a test checks it."""

from __future__ import annotations

from typing import Any, cast

import msgspec
from redis.asyncio import Redis, RedisCluster

from gateway.constants import PARTITIONS_KEY, RETENTION_COUNTS, RETENTION_LEASE, events_key

StreamEntry = tuple[bytes, dict[bytes, bytes]]
"""An entry's id and fields, as a client without `decode_responses` reads them."""


async def read_stream(redis: Redis | RedisCluster, key: str | bytes) -> list[StreamEntry]:
    """XRANGE of a whole stream, oldest first (redis-py types its reply loosely)."""
    return cast(list[StreamEntry], await redis.xrange(key))


async def stream_messages(redis: Redis, partition: int = 0) -> list[dict[str, Any]]:
    """The messages of one partition, oldest first, each with its `source` under `_source`."""
    out = []
    for _id, fields in await read_stream(redis, events_key(partition)):
        message = msgspec.json.decode(fields[b"data"])
        message["_source"] = fields[b"source"].decode()
        out.append(message)
    return out


BOOKKEEPING = {PARTITIONS_KEY.encode(), RETENTION_LEASE.encode(), RETENTION_COUNTS.encode()}
"""Keys a running gateway writes whatever it is sent: its partition count, the trimming lease."""


async def stored(redis: Redis) -> list[bytes]:
    """Every key but the gateway's bookkeeping: what requests made it store."""
    keys = cast(list[bytes], await redis.keys("*"))
    return [key for key in keys if key not in BOOKKEEPING]


async def read_group(
    redis: Redis | RedisCluster, stream: str, group: str, count: int, consumer: str = "c"
) -> list[str]:
    """XREADGROUP of up to `count` new entries of one stream; their ids."""
    reply = cast(
        list[tuple[bytes, list[StreamEntry]]],
        await redis.xreadgroup(group, consumer, {stream: ">"}, count=count),
    )
    return [entry_id.decode() for _, entries in reply for entry_id, _ in entries]


async def entry_ids(redis: Redis | RedisCluster, stream: str) -> list[str]:
    """The ids of every entry of `stream`, oldest first."""
    return [entry_id.decode() for entry_id, _ in await read_stream(redis, stream)]
