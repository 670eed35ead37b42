"""What landed in a Redis stream, read back as a test checks it."""

from __future__ import annotations

from typing import Any

import msgspec
from redis.asyncio import Redis

from gateway.constants import events_key


async def stream_messages(redis: Redis, partition: int = 0) -> list[dict[str, Any]]:
    """The messages of one partition, oldest first, each with its `source` under `_source`."""
    entries = await redis.xrange(events_key(partition))
    out = []
    for _id, fields in entries:
        message = msgspec.json.decode(fields[b"data"])
        message["_source"] = fields[b"source"].decode()
        out.append(message)
    return out
