"""The messageId index: which stream entry an accepted messageId became.

The dedupe script writes it in the call that adds the entries (`gateway.store.dedupe_script`),
so the hot path pays no round trip for it: per partition and dedupe bucket, a hash
`gateway:where:{n}:<bucket>` of `<messageId>` -> `<entry id> <route> <source>`, expiring with
the bucket's dedupe set. A messageId is therefore found for the dedupe window (and up to a
quarter more) after it was accepted; with dedupe off nothing is indexed.

`find` reads it for the admin API: one `HGET` per partition and bucket, in one pipeline.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from gateway.constants import event_index_prefix
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


def parse(stream: str, value: bytes) -> Where:
    """An index value of `stream` (`<entry id> <route> <source>`)."""
    entry_id, route, source = value.decode(errors="replace").split(" ", 2)
    return Where(stream, entry_id, "" if route == "-" else route, source)


async def find(
    redis: AnyRedis,
    message_id: str,
    streams: Sequence[str],
    window: int,
    now: float | None = None,
) -> Where | None:
    """Where `message_id` went, looked up in every stream's buckets of the window; the
    newest when it was accepted more than once (from two sources, or after the window)."""
    if window <= 0:
        return None
    buckets = bucket_range(window, time.time() if now is None else now)
    pipe = redis.pipeline(transaction=False)
    for stream in streams:
        prefix = event_index_prefix(stream)
        for bucket in buckets:
            pipe.hget(f"{prefix}{bucket}", message_id)
    replies: list[Any] = await pipe.execute()
    found: list[Where] = []
    for position, value in enumerate(replies):
        if value is not None:
            found.append(parse(streams[position // len(buckets)], value))
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
