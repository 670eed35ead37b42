"""Which stream entry an accepted messageId became, read from the dedupe script's hashes.

The dedupe script marks each entry it adds in the call that adds it
(`gateway.store.dedupe_script`), so the hot path pays nothing more for this: per partition
and dedupe bucket, a hash `gateway:seen:{n}:<bucket>` of `<source>:<messageId>` ->
`<entry id> <route>`. A messageId is therefore found for the dedupe window (and up to a
quarter more) after it was accepted; with dedupe off nothing is kept.

`find` reads it for the admin API: one `HMGET` of the messageId under each candidate
source per partition and bucket, in one pipeline.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from gateway.constants import seen_prefix
from gateway.store.dedupe_script import bucket_seconds
from gateway.store.redis_client import AnyRedis


@dataclasses.dataclass(frozen=True, slots=True)
class Where:
    """Where an accepted message went."""

    stream: str
    entry_id: str
    route: str
    """The route pattern it came by; "" when not known (e.g. replayed from an old spool)."""
    source: str


def parse(stream: str, source: str, value: bytes) -> Where:
    """A seen hash's value of `stream` and `source` (`<entry id> <route>`)."""
    entry_id, _, route = value.decode(errors="replace").partition(" ")
    return Where(stream, entry_id, "" if route == "-" else route, source)


async def find(
    redis: AnyRedis,
    message_id: str,
    streams: Sequence[str],
    window: int,
    sources: Sequence[str],
    now: float | None = None,
) -> Where | None:
    """Where `message_id` of one of `sources` went, looked up in every stream's buckets of
    the window; the newest when it was accepted more than once (from two sources, or after
    the window)."""
    if window <= 0 or not sources:
        return None
    buckets = bucket_range(window, time.time() if now is None else now)
    fields = [f"{source}:{message_id}" for source in sources]
    pipe = redis.pipeline(transaction=False)
    for stream in streams:
        prefix = seen_prefix(stream)
        for bucket in buckets:
            pipe.hmget(f"{prefix}{bucket}", fields)
    replies: list[Any] = await pipe.execute()
    found = [
        parse(streams[position // len(buckets)], source, value)
        for position, values in enumerate(replies)
        for source, value in zip(sources, values, strict=True)
        if value is not None
    ]
    return max(found, key=lambda where: order(where.entry_id), default=None)


def bucket_range(window: int, now: float) -> range:
    """The index buckets a messageId accepted within `window` of `now` may be in."""
    span = bucket_seconds(window)
    # One bucket more on each side: this clock and Redis's (`TIME`) may differ a little.
    return range(int((now - window) // span) - 1, int(now // span) + 2)


def order(entry_id: str) -> tuple[int, int]:
    """A stream entry id as numbers, to compare two."""
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)
