"""What landed in a Redis stream, read back as a test checks it."""

from __future__ import annotations

from typing import Any, cast

import msgspec
from redis.asyncio import Redis, RedisCluster

from gateway.constants import events_key

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
