"""Where a message is and what became of it, read from Redis for the admin API.

The dedupe script's hashes give its stream entry (`gateway.store.event_index`), searched
under each source of this process's table (a deleted source's messages are not found); then,
in one pipeline, the entry and the stream's consumer groups; then each group's pending entry
(`XPENDING`, its attempts) and the last error its workers recorded
(`gateway.store.deliveries`). A message a group has read past and no longer holds is
delivered, unless it is in the group's dead-letter stream: those written since the message
are read, newest entries last, at most `DEAD_SCAN` of them. A refused message's reason comes
from `gateway.store.refusals`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from gateway.constants import DEFAULT_SOURCE, dead_letter_key, hash_tag
from gateway.control.event_schemas import EventView, GroupStatus, RefusedView
from gateway.control.live import LiveSources
from gateway.ingest.sources import Sources
from gateway.ops.text import as_text
from gateway.store import deliveries, event_index, refusals
from gateway.store.event_index import Where, order
from gateway.store.redis_client import AnyRedis

DEAD_SCAN = 100_000
"""Dead letters read at most per group while looking for one message's."""
_PAGE = 1_000
DEAD_MARGIN_MS = 60_000
"""Dead letters are read from this long before the message's entry id (clocks of cluster
nodes may differ a little)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Lookup:
    """What the admin API reads with: Redis, the partition streams, the dedupe window, and
    the sources table (whose sources' messages it looks for)."""

    redis: AnyRedis
    streams: Sequence[str]
    window: int
    live: LiveSources

    async def event(self, message_id: str) -> EventView | RefusedView | None:
        """The message's whereabouts; its refusal if it was only refused; None if unseen."""
        sources = source_ids(self.live.table)
        where = await event_index.find(self.redis, message_id, self.streams, self.window, sources)
        if where is not None:
            return await self._accepted(message_id, where)
        refusal = await refusals.find(self.redis, message_id)
        if refusal is None:
            return None
        return RefusedView(
            messageId=refusal.message_id,
            refused=refusal.reason,
            route=refusal.route,
            source=refusal.source or None,
            at=refusal.at,
        )

    async def _accepted(self, message_id: str, where: Where) -> EventView:
        redis, stream, entry_id = self.redis, where.stream, where.entry_id
        entries: Any = await redis.xrange(stream, min=entry_id, max=entry_id, count=1)
        try:
            infos: Any = await redis.xinfo_groups(stream)
        except ResponseError:  # the stream is gone
            infos = []
        names = [as_text(info["name"]) for info in infos]
        pipe = redis.pipeline(transaction=False)
        for name in names:
            pipe.xpending_range(stream, name, min=entry_id, max=entry_id, count=1)
        held: list[Any] = await pipe.execute() if names else []
        errors = await deliveries.last_errors(redis, stream, entry_id, names) if names else {}
        message = _message(entries[0][1][b"data"]) if entries else None
        groups: dict[str, GroupStatus] = {}
        for name, info, pending in zip(names, infos, held, strict=True):
            if pending:
                attempts = int(pending[0]["times_delivered"])
                groups[name] = GroupStatus(
                    status="pending", attempts=attempts, error=errors.get(name)
                )
            elif order(entry_id) > order(as_text(info["last-delivered-id"])):
                groups[name] = GroupStatus(status="pending", attempts=0)  # not read yet
            else:
                dead = await self._dead(name, stream, entry_id)
                groups[name] = dead or GroupStatus(status="delivered" if entries else "trimmed")
        received = message.get("receivedAt") if message else None
        return EventView(
            messageId=message_id,
            source=where.source,
            route=where.route or None,
            receivedAt=received if isinstance(received, str) else None,
            stream=stream,
            partition=_partition(stream),
            entryId=entry_id,
            message=message,
            groups=groups,
        )

    async def _dead(self, group: str, stream: str, entry_id: str) -> GroupStatus | None:
        """The group's dead letter of the entry, if it wrote one."""
        milliseconds = order(entry_id)[0]
        start = f"{max(0, milliseconds - DEAD_MARGIN_MS)}-0"
        wanted = (stream.encode(), entry_id.encode())
        key = dead_letter_key(group)
        for _ in range(DEAD_SCAN // _PAGE):
            letters: Any = await self.redis.xrange(key, min=start, max="+", count=_PAGE)
            for letter_id, fields in letters:
                if (fields.get(b"stream"), fields.get(b"id")) == wanted:
                    attempts = fields.get(b"attempts", b"0")
                    return GroupStatus(
                        status="dead",
                        attempts=int(attempts) if attempts.isdigit() else 0,
                        error=fields.get(b"error", b"").decode(errors="replace"),
                        deadLetterId=as_text(letter_id),
                    )
            if len(letters) < _PAGE:
                return None
            start = f"({as_text(letters[-1][0])}"
        return None


def source_ids(table: Sources) -> list[str]:
    """The ids a message of `table` may be stored under: its sources', disabled ones too;
    the open source's in open mode."""
    return [DEFAULT_SOURCE] if table.open else [source.id for source in table.configured]


def _message(data: bytes) -> dict[str, Any] | None:
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None


def _partition(stream: str) -> int | None:
    tag = hash_tag(stream)[1:-1]
    return int(tag) if tag.isdigit() else None
