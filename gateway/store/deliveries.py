"""What the workers did, per minute, and why a message waits for its retry: written by the
workers (`gateway.worker.ledger`), read by the admin API (`/v1/deliveries`, `/v1/events`).

Counts: one hash per minute, `gateway:deliveries:<minute>` (Unix time // 60), of
`<outcome>\\t<group>\\t<destination>\\t<source>` -> count, the outcome being one of `OUTCOMES`.
A worker adds a batch's counts with one `HINCRBY` per distinct field, in one pipeline per
batch, never a command per message; each hash expires `KEEP` seconds after its minute.

Last errors: `gateway:deliveries:retrying:{<group>}` (the dead-letter stream's slot), a hash
of `<stream> <entry id>` -> the error of the message's last failed attempt, while it waits
for a retry. The field goes when the message is delivered or dead-lettered, so the hash holds
no more than the group's failing pending entries; it expires `ERRORS_KEEP` after its last
write.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError

from gateway.constants import DELIVERIES_PREFIX
from gateway.store.redis_client import AnyRedis

log = logging.getLogger(__name__)

OUTCOMES = ("delivered", "retried", "failed", "dead")
"""delivered: a destination accepted the message; failed: it refused an attempt; retried:
an attempt that was a retry (whatever came of it); dead: the message was dead-lettered."""
KEEP = 2 * 3600
"""Seconds a minute's counts are kept after the minute: the last hour is always there."""
ERRORS_KEEP = 86_400
MAX_ERROR = 300
"""Characters kept of an error."""
NO_DESTINATION = "-"
"""The destination of a message dead-lettered before any was chosen (unreadable data)."""


def minute_key(minute: int) -> str:
    """The counts' hash of a minute (Unix time // 60)."""
    return f"{DELIVERIES_PREFIX}:{minute}"


def retrying_key(group: str) -> str:
    """The last errors of `group`'s messages waiting for a retry."""
    return f"{DELIVERIES_PREFIX}:retrying:{{{group}}}"


def message_field(stream: str, entry_id: str) -> str:
    """A message's field in `retrying_key`."""
    return f"{stream} {entry_id}"


class Tally:
    """One batch's counts and errors, written by `write` in one pipeline."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.counts: collections.Counter[str] = collections.Counter()
        self.errors: dict[str, str] = {}
        self.done: list[str] = []

    def add(self, outcome: str, destination: str, source: str) -> None:
        """Count one message's `outcome` at `destination`."""
        self.counts[f"{outcome}\t{self.group}\t{destination}\t{source}"] += 1

    def failed(self, stream: str, entry_id: str, error: str) -> None:
        """The message waits for a retry after `error`."""
        self.errors[message_field(stream, entry_id)] = error[:MAX_ERROR]

    def settled(self, stream: str, entry_id: str) -> None:
        """The message, which had failed before, is delivered or dead: forget its error."""
        self.done.append(message_field(stream, entry_id))

    async def write(self, redis: AnyRedis, now: float | None = None) -> None:
        """Add the counts to this minute's hash and keep the errors; best effort (a lost
        batch of counts is logged, the deliveries themselves are settled already)."""
        if not (self.counts or self.errors or self.done):
            return
        minute = int((time.time() if now is None else now) // 60)
        pipe = redis.pipeline(transaction=False)
        if self.counts:
            key = minute_key(minute)
            for field, count in self.counts.items():
                pipe.hincrby(key, field, count)
            pipe.expireat(key, (minute + 1) * 60 + KEEP)
        errors = retrying_key(self.group)
        if self.done:
            pipe.hdel(errors, *self.done)
        if self.errors:
            pipe.hset(errors, mapping=self.errors)  # type: ignore[arg-type]
            pipe.expire(errors, ERRORS_KEEP)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("worker: could not record a batch's delivery counts (%s)", exc)


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """One minute's counts of a group, destination and source."""

    minute: int
    group: str
    destination: str
    source: str
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    dead: int = 0


async def read(redis: AnyRedis, minutes: int, now: float | None = None) -> list[Row]:
    """The counts of the last `minutes` minutes (this one included), oldest first."""
    last = int((time.time() if now is None else now) // 60)
    span = range(last - minutes + 1, last + 1)
    pipe = redis.pipeline(transaction=False)
    for minute in span:
        pipe.hgetall(minute_key(minute))
    replies: list[dict[bytes, bytes]] = await pipe.execute()
    rows: list[Row] = []
    for minute, counts in zip(span, replies, strict=True):
        found: dict[tuple[str, str, str], dict[str, int]] = {}
        for field, value in counts.items():
            outcome, group, destination, source = field.decode(errors="replace").split("\t", 3)
            if outcome in OUTCOMES:
                found.setdefault((group, destination, source), {})[outcome] = int(value)
        for (group, destination, source), n in sorted(found.items()):
            rows.append(Row(minute * 60, group, destination, source, **n))
    return rows


async def last_errors(
    redis: AnyRedis, stream: str, entry_id: str, groups: Sequence[str]
) -> dict[str, str]:
    """Each group's last error for one message, where it has one."""
    pipe = redis.pipeline(transaction=False)
    for group in groups:
        pipe.hget(retrying_key(group), message_field(stream, entry_id))
    replies: list[Any] = await pipe.execute()
    return {g: e.decode(errors="replace") for g, e in zip(groups, replies, strict=True) if e}
