"""Gauges of what the store holds, read when scraped rather than counted.

- the spool on disk, per slot under `<data-dir>/spool/` (a dead process's included);
- from Redis: each partition's length, and per consumer group and partition its lag
  (entries not yet delivered), pending entries and consumers, and its dead letters.
  It flags a partition a group does not read (`gateway_group_missing_partition`) and
  counts each group's live consumers (read within a minute); and what trimming removed
  (`gateway_retention_trimmed_total`, from `gateway:retention:counts`). The partitions are
  those asked for plus every one a gateway recorded (`gateway.store.partitions`).
  Lag is a fact about Redis, not about a process: reading it at scrape time means it is
  reported even while every worker of a group is down, which is when it matters.

The gateway's `GET /metrics` (`gateway.http.scrape`) reports all of them, a worker's
(`gateway.worker.metrics`) the Redis ones of its group.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis.exceptions import RedisClusterException, RedisError

from gateway.constants import dead_letter_key, events_key
from gateway.ops.text import as_text
from gateway.store import partitions as registry
from gateway.store import retention
from gateway.store.redis_client import AnyRedis
from gateway.store.spool import SUFFIX

LIVE_WITHIN_MS = 60_000
"""A consumer that read (or tried to) within this many milliseconds is live."""

REDIS_TIMEOUT = 1.0
"""Seconds a scrape waits for Redis before it answers without the Redis gauges."""


def spool_families(root: Path) -> list[Metric]:
    """Bytes and segment files waiting for replay, per slot under `root` (one per process).

    Per slot because `--spool-max-bytes` is per process: `max` says how close a spool is
    to full, `sum` how much waits on this data dir.
    """
    size = GaugeMetricFamily(
        "gateway_spool_bytes",
        "Bytes in a spool slot waiting for replay (a slot per gateway process).",
        labels=["slot"],
    )
    segments = GaugeMetricFamily(
        "gateway_spool_segments",
        "Spool files of a slot waiting for replay (each up to --spool-segment-bytes).",
        labels=["slot"],
    )
    for slot in sorted(_entries(root), key=lambda entry: entry.name):
        if not slot.is_dir():
            continue
        sizes = [_size(e) for e in _entries(Path(slot.path)) if e.name.endswith(SUFFIX)]
        size.add_metric([slot.name], sum(sizes))
        segments.add_metric([slot.name], sum(1 for n in sizes if n))
    return [size, segments]


async def redis_families(
    redis: AnyRedis, streams: Sequence[str], within: float, group: str | None = None
) -> list[Metric]:
    """Stream lengths, and per group (or only `group`) lag, pending, consumers, dead letters.

    `gateway_redis_up` is 0 and the rest left out when Redis does not answer `within` seconds.
    """
    up = GaugeMetricFamily("gateway_redis_up", "1 when Redis answered this scrape's reads, else 0.")
    try:
        async with asyncio.timeout(within):
            families = await _read_redis(redis, streams, group)
    except (RedisError, RedisClusterException, OSError, TimeoutError):
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    return [up, *families]


async def _read_redis(redis: AnyRedis, streams: Sequence[str], only: str | None) -> list[Metric]:
    # Not `gateway.worker.status.collect`: it SCANs the keyspace for dead-letter streams,
    # which with millions of keys is too slow for a scrape. The groups found on the
    # partitions name their dead-letter streams instead.
    found = await registry.recorded(redis)
    if found is not None:
        streams = [*streams, *(events_key(n) for n in range(found.highest))]
        streams = list(dict.fromkeys(streams))
    pipe = redis.pipeline(transaction=False)
    for stream in streams:
        pipe.xlen(stream)
        pipe.xinfo_groups(stream)
    replies = await pipe.execute(raise_on_error=False)
    length = GaugeMetricFamily(
        "gateway_stream_length", "Entries in each partition stream.", labels=["stream"]
    )
    lag = GaugeMetricFamily(
        "gateway_group_lag",
        "Entries of a partition not yet delivered to a consumer group.",
        labels=["group", "stream"],
    )
    pending = GaugeMetricFamily(
        "gateway_group_pending",
        "Entries delivered to a group's consumers and not yet acknowledged.",
        labels=["group", "stream"],
    )
    consumers = GaugeMetricFamily(
        "gateway_group_consumers",
        "Consumers of a group on a partition.",
        labels=["group", "stream"],
    )
    live = GaugeMetricFamily(
        "gateway_group_live_consumers",
        "Consumers of a group on a partition that read within the last minute.",
        labels=["group", "stream"],
    )
    groups: set[str] = set()
    read: set[tuple[str, str]] = set()
    for index, stream in enumerate(streams):
        count, infos = replies[2 * index], replies[2 * index + 1]
        if isinstance(count, Exception):
            raise count
        length.add_metric([stream], int(count))
        for info in [] if isinstance(infos, Exception) else infos:  # no stream: no groups
            name = as_text(info["name"])
            if only is not None and name != only:
                continue
            groups.add(name)
            read.add((name, stream))
            labels = [name, stream]
            if info.get("lag") is not None:  # Redis cannot tell after deletions
                lag.add_metric(labels, int(info["lag"]))
            pending.add_metric(labels, int(info["pending"]))
            consumers.add_metric(labels, int(info["consumers"]))
    missing = GaugeMetricFamily(
        "gateway_group_missing_partition",
        "1 for a partition stream a consumer group does not read (no worker created it there).",
        labels=["group", "stream"],
    )
    for name in sorted(groups):
        for stream in streams:
            if (name, stream) not in read:
                missing.add_metric([name, stream], 1)
    if read:
        pipe = redis.pipeline(transaction=False)
        pairs = sorted(read)
        for name, stream in pairs:
            pipe.xinfo_consumers(stream, name)
        for (name, stream), found_consumers in zip(pairs, await pipe.execute(), strict=True):
            count = sum(1 for c in found_consumers if int(c["idle"]) < LIVE_WITHIN_MS)
            live.add_metric([name, stream], count)
    dead = GaugeMetricFamily(
        "gateway_dead_letters", "Messages in a group's dead-letter stream.", labels=["group"]
    )
    if groups:
        pipe = redis.pipeline(transaction=False)
        names = sorted(groups)
        for name in names:
            pipe.xlen(dead_letter_key(name))
        for name, count in zip(names, await pipe.execute(), strict=True):
            dead.add_metric([name], int(count))
    trimmed = CounterMetricFamily(
        "gateway_retention_trimmed",
        "Stream entries trimmed: reason acked (every group had acknowledged them) or "
        "expired (past --retention-max-age, read or not).",
        labels=["reason"],
    )
    counted = await retention.counts(redis)
    trimmed.add_metric(["acked"], counted.acked)
    trimmed.add_metric(["expired"], counted.expired)
    return [length, lag, pending, consumers, live, missing, dead, trimmed]


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError:
        return []


def _size(entry: os.DirEntry[str]) -> int:
    try:
        return entry.stat().st_size
    except OSError:  # replayed and deleted meanwhile
        return 0
