"""How many partitions there are: recorded in Redis by the gateway, read by everyone else.

The gateway writes its `--partitions` at start, and again now and then (Redis may have been
emptied), into the hash `gateway:partitions`: `current` is the last count a gateway
started with, `highest` the most any ever used. Streams above `current` still hold entries
after a gateway was restarted with fewer partitions, so readers take `highest`. Writing it is
one command a minute; the request handlers never touch it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import zlib

from redis.exceptions import RedisClusterException, RedisError

from gateway.constants import PARTITIONS_KEY
from gateway.ops import tasks
from gateway.store.redis_client import AnyRedis

log = logging.getLogger(__name__)

RECORD_EVERY = 60.0
"""Seconds between two writes of the count by a running gateway."""

_RECORD = """
redis.call('HSET', KEYS[1], 'current', ARGV[1])
local highest = tonumber(redis.call('HGET', KEYS[1], 'highest') or '0')
if tonumber(ARGV[1]) > highest then
  redis.call('HSET', KEYS[1], 'highest', ARGV[1])
  return 1
end
return 0
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Recorded:
    """What the gateways recorded."""

    current: int
    """The partitions of the gateway started last."""
    highest: int
    """The most partitions any gateway used: every one of them may hold entries."""


def partition_of(user: object, partitions: int) -> int:
    """The partition of a message whose `userId` (else `anonymousId`) is `user`."""
    if partitions == 1:
        return 0
    return zlib.crc32(str(user).encode()) % partitions


async def record(redis: AnyRedis, partitions: int) -> bool:
    """Record that a gateway runs with `partitions`; True when that is more than ever before."""
    return bool(await redis.eval(_RECORD, 1, PARTITIONS_KEY, str(partitions)))


async def recorded(redis: AnyRedis) -> Recorded | None:
    """What the gateways recorded; None before any did."""
    fields = await redis.hgetall(PARTITIONS_KEY)
    if not fields:
        return None
    current = int(fields.get(b"current", fields.get("current", 0)))
    highest = int(fields.get(b"highest", fields.get("highest", 0)))
    return Recorded(current=current, highest=max(current, highest))


async def keep_recorded(redis: AnyRedis, partitions: int, every: float = RECORD_EVERY) -> None:
    """Record `partitions` now and every `every` seconds, until cancelled.

    While Redis is away it tries again each second: a worker must learn the count as soon
    as Redis is back.
    """
    while True:
        try:
            if await record(redis, partitions):
                log.info(
                    "partitions: recorded %d partition(s) in %s",
                    partitions,
                    PARTITIONS_KEY,
                    extra={"event": "partitions_recorded", "partitions": partitions},
                )
            delay = every
        except (RedisError, RedisClusterException, OSError) as exc:
            log.debug("partitions: cannot record the count yet: %s", exc)
            delay = 1.0
        tasks.raise_if_cancelled()
        await asyncio.sleep(delay)
