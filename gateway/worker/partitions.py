"""The partition streams a worker or `gateway status` looks at."""

from __future__ import annotations

import re

from gateway.constants import EVENTS_PREFIX, events_key
from gateway.store.redis_client import AnyRedis

_PARTITION = re.compile(rf"{re.escape(EVENTS_PREFIX)}:\{{(\d+)\}}")


async def partition_streams(redis: AnyRedis, partitions: int) -> list[str]:
    """`gateway:events:{0}` .. `{partitions-1}`, plus any higher partition that exists.

    Partitions the gateway created beyond `--partitions` (it was started with more) are
    found with SCAN, so no stream is left without a consumer.
    """
    numbers = set(range(partitions))
    async for key in redis.scan_iter(match=f"{EVENTS_PREFIX}:*", count=1000, _type="stream"):
        name = key.decode() if isinstance(key, bytes) else str(key)
        match = _PARTITION.fullmatch(name)
        if match:
            numbers.add(int(match.group(1)))
    return [events_key(n) for n in sorted(numbers)]
