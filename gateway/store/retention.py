"""Trimming the partition streams: what every group acknowledged, and what is too old.

Per stream, in one pass:

- **acknowledged**: an entry every consumer group has acknowledged goes once it is older
  than `acked` seconds. A group has acknowledged everything below its oldest pending entry,
  or up to its `last-delivered-id` when nothing is pending. A group that exists on some
  partition but not on this one has read nothing of it yet (its worker will create it), so
  nothing of this stream counts as acknowledged while it is missing.
- **expired**: an entry older than `max_age` seconds (0: never) goes whether read or not,
  with a warning and a counter (`gateway:retention:counts`), never silently. With no group
  at all, this is the only rule.

Stream ids begin with the milliseconds Redis added the entry at, so "older than" is an
`XTRIM ... MINID` (exact, one stream a command: each stream is one slot on a cluster). Only
the process holding the lease (`gateway.store.lease`) trims: gateways and workers all run a
`Trimmer`, one of them works.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisClusterException, RedisError, ResponseError

from gateway.constants import RETENTION_COUNTS, RETENTION_LEASE, all_events_keys
from gateway.ops import tasks
from gateway.ops.text import as_text
from gateway.store import partitions as registry
from gateway.store.lease import Lease
from gateway.store.redis_client import AnyRedis

log = logging.getLogger(__name__)

StreamId = tuple[int, int]


@dataclasses.dataclass(frozen=True, slots=True)
class Retention:
    """How long entries stay: `acked` seconds once every group has them, `max_age` at most."""

    acked: float = 3600.0
    max_age: float = 604800.0
    """0: forever."""

    @property
    def every(self) -> float:
        """Seconds between two trimming passes: a quarter of the shorter time, 0.5 to 30."""
        times = [t for t in (self.acked, self.max_age) if t > 0]
        return min(30.0, max(0.5, min(times, default=120.0) / 4))


@dataclasses.dataclass(slots=True)
class Trimmed:
    """What one pass removed."""

    acked: int = 0
    expired: int = 0


def parse_id(value: object) -> StreamId:
    """`1700000000000-3` as (milliseconds, sequence)."""
    ms, _, seq = as_text(value).partition("-")
    return int(ms), int(seq or 0)


def _format(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


async def groups_of(redis: AnyRedis, streams: Sequence[str]) -> list[list[dict[str, Any]]]:
    """`XINFO GROUPS` of each stream (empty for a stream that does not exist)."""
    pipe = redis.pipeline(transaction=False)
    for stream in streams:
        pipe.xinfo_groups(stream)
    replies = await pipe.execute(raise_on_error=False)
    out: list[list[dict[str, Any]]] = []
    for reply in replies:
        if isinstance(reply, ResponseError):
            out.append([])  # no such key: nothing to trim, no group
        elif isinstance(reply, Exception):
            raise reply
        else:
            out.append(list(reply))
    return out


async def _acknowledged_below(
    redis: AnyRedis, stream: str, infos: list[dict[str, Any]]
) -> StreamId:
    """The id below which every group of `stream` has acknowledged everything."""
    below: StreamId | None = None
    for info in infos:
        oldest = None
        if int(info["pending"]) > 0:
            summary = await redis.xpending(stream, as_text(info["name"]))
            oldest = summary["min"]  # None if acknowledged since XINFO
        if oldest is not None:
            first = parse_id(oldest)
        else:
            # Everything up to the last delivered entry is acknowledged; a `last-delivered-id`
            # read a moment ago is at most too old, which only trims less.
            ms, seq = parse_id(info["last-delivered-id"])
            first = (ms, seq + 1)
        below = first if below is None else min(below, first)
    return below if below is not None else (0, 0)


async def trim_stream(
    redis: AnyRedis,
    stream: str,
    infos: list[dict[str, Any]],
    every_group: set[str],
    retention: Retention,
    now_ms: int,
) -> Trimmed:
    """Trim one stream given its groups (`infos`) and the groups of every partition."""
    done = Trimmed()
    names = {as_text(info["name"]) for info in infos}
    if every_group and not (every_group - names):
        acked = await _acknowledged_below(redis, stream, infos)
        limit = min(acked, (now_ms - int(retention.acked * 1000), 0))
        if limit > (0, 0):
            done.acked = int(await redis.xtrim(stream, minid=_format(limit), approximate=False))
    if retention.max_age > 0:
        oldest = (now_ms - int(retention.max_age * 1000), 0)
        if oldest > (0, 0):
            done.expired = int(await redis.xtrim(stream, minid=_format(oldest), approximate=False))
    if done.expired:
        log.warning(
            "retention: trimmed %d entries of %s older than --retention-max-age %gs that %s",
            done.expired,
            stream,
            retention.max_age,
            "some consumer group had not acknowledged"
            if every_group
            else "no consumer group reads",
            extra={"event": "retention_expired", "stream": stream, "count": done.expired},
        )
    return done


async def trim(redis: AnyRedis, streams: Sequence[str], retention: Retention) -> Trimmed:
    """One pass over `streams`; the counts are added to `gateway:retention:counts`."""
    infos = await groups_of(redis, streams)
    every_group = {as_text(info["name"]) for stream_infos in infos for info in stream_infos}
    now_ms = int(time.time() * 1000)
    total = Trimmed()
    for stream, stream_infos in zip(streams, infos, strict=True):
        if not stream_infos and not every_group and retention.max_age <= 0:
            continue
        done = await trim_stream(redis, stream, stream_infos, every_group, retention, now_ms)
        total.acked += done.acked
        total.expired += done.expired
    if total.acked or total.expired:
        pipe = redis.pipeline(transaction=False)
        pipe.hincrby(RETENTION_COUNTS, "acked", total.acked)
        pipe.hincrby(RETENTION_COUNTS, "expired", total.expired)
        await pipe.execute()
        log.debug("retention: trimmed %d acknowledged, %d expired", total.acked, total.expired)
    return total


async def counts(redis: AnyRedis) -> Trimmed:
    """What trimming removed so far, by every process."""
    fields = await redis.hgetall(RETENTION_COUNTS)
    values = {as_text(k): int(v) for k, v in fields.items()}
    return Trimmed(acked=values.get("acked", 0), expired=values.get("expired", 0))


class Trimmer:
    """Trims every partition stream (`partitions`, or more if recorded) each `retention.every`
    seconds while it holds the lease; every gateway and worker process runs one, one trims."""

    def __init__(self, redis: AnyRedis, retention: Retention, partitions: int, owner: str) -> None:
        self.redis = redis
        self.retention = retention
        self.partitions = partitions
        self.lease = Lease(redis, RETENTION_LEASE, owner, ttl=max(10.0, 3 * retention.every))
        self.holding = False

    async def step(self) -> Trimmed | None:
        """Trim once if this process holds the lease (taking it if free); None if another does."""
        self.holding = await self.lease.hold()
        if not self.holding:
            return None
        found = await registry.recorded(self.redis)
        count = max(self.partitions, found.highest if found else 0)
        return await trim(self.redis, all_events_keys(count), self.retention)

    async def run(self) -> None:
        """Trim until cancelled; Redis errors are waited out. The lease is given up at the end."""
        try:
            while True:
                try:
                    await self.step()
                except (RedisError, RedisClusterException, OSError) as exc:
                    log.debug("retention: cannot trim now: %s", exc)
                except Exception:
                    # A bug here must not stop trimming for good (nor the process).
                    log.exception("retention: trimming failed")
                tasks.raise_if_cancelled()
                await asyncio.sleep(self.retention.every)
        finally:
            if self.holding:
                # If it cannot be given up, it expires by itself.
                with contextlib.suppress(
                    RedisError, RedisClusterException, OSError, asyncio.CancelledError
                ):
                    await asyncio.shield(self.lease.release())
