"""The partition streams a worker or `gateway status` reads, and how a worker keeps up.

Every partition that is configured (`--partitions`), recorded by a gateway
(`gateway.store.partitions`: the highest count any gateway used) or found in Redis (a
SCAN, at start) is read. A running worker asks the record again every `WATCH_EVERY`
seconds, so a gateway restarted with more partitions has their streams read within that.
"""

from __future__ import annotations

import logging
import re
import time

from gateway.constants import EVENTS_PREFIX, PARTITIONS_KEY, events_key
from gateway.store import partitions as registry
from gateway.store.redis_client import AnyRedis

log = logging.getLogger("gateway.worker")

WATCH_EVERY = 2.0
"""Seconds between two reads of the recorded partition count by a running worker."""

_PARTITION = re.compile(rf"{re.escape(EVENTS_PREFIX)}:\{{(\d+)\}}")


async def partition_streams(redis: AnyRedis, partitions: int) -> list[str]:
    """`gateway:events:{0}` .. `{n-1}`: the configured, recorded or existing partitions."""
    found = await registry.recorded(redis)
    numbers = set(range(max(partitions, found.highest if found else 0)))
    async for key in redis.scan_iter(match=f"{EVENTS_PREFIX}:*", count=1000, _type="stream"):
        name = key.decode() if isinstance(key, bytes) else str(key)
        match = _PARTITION.fullmatch(name)
        if match:
            numbers.add(int(match.group(1)))
    return [events_key(n) for n in sorted(numbers)]


async def say_if_different(redis: AnyRedis, partitions: int, streams: list[str]) -> None:
    """Log at start how `--partitions` compares with what the gateways recorded."""
    found = await registry.recorded(redis)
    if found is None:
        log.info(
            "worker: no gateway has recorded its partitions in %s yet; reading %d and "
            "watching for more",
            PARTITIONS_KEY,
            len(streams),
        )
    elif found.current != partitions:
        log.warning(
            "worker: --partitions is %d but the gateway runs with %d (the most ever: %d); "
            "reading all %d partitions found",
            partitions,
            found.current,
            found.highest,
            len(streams),
            extra={"event": "partitions_differ", "partitions": partitions},
        )


class PartitionWatch:
    """Tells a running consumer about partitions recorded after it started."""

    def __init__(self, redis: AnyRedis, streams: list[str], every: float = WATCH_EVERY) -> None:
        self._redis = redis
        self._known = set(streams)
        self._every = every
        self._last = time.monotonic()

    async def new_streams(self) -> list[str]:
        """The streams of partitions recorded since the last call (at most every `every` s)."""
        if time.monotonic() - self._last < self._every:
            return []
        self._last = time.monotonic()
        found = await registry.recorded(self._redis)
        if found is None:
            return []
        new = [events_key(n) for n in range(found.highest) if events_key(n) not in self._known]
        if new:
            log.warning(
                "worker: the gateway now records %d partitions: reading %s too",
                found.highest,
                ", ".join(new),
                extra={"event": "partitions_added", "partitions": found.highest},
            )
            self._known.update(new)
        return new
