"""What the live inspector shows that the gateway writes nowhere else: a capped ring per
process of messages answered without being stored as such (duplicates, suppressed,
throttled, spooled), flushed once a second to the bounded stream `gateway:inspect` while
someone watches.

The hot path asks one attribute, `Ring.watching`, and only where such an outcome was
already decided (a flush with duplicates, a suppressed message, a rate limit); with no
inspector open it is False and nothing else happens. The inspector's feed sets the flag
key `gateway:inspect:watching` with a short TTL and refreshes it while a page is open;
every process reads it once a second (`Ring.run`), so every process of `--workers N`
starts noting within a second, and stops within `WATCH_TTL` of the last page closing.

A flush that left duplicates out tells only how many (the dedupe script's count): which
ones is found here, off the request, by reading which entry the dedupe script's hash says
each messageId became (`gateway.store.event_index`) and comparing it with the one sent.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Sequence
from typing import Any

import msgspec
from redis.exceptions import RedisError

from gateway.constants import INSPECT_STREAM, INSPECT_WATCHING, seen_prefix
from gateway.ops import tasks
from gateway.store import event_index
from gateway.store.entry import Entry
from gateway.store.redis_client import AnyRedis

log = logging.getLogger(__name__)

CAPACITY = 1_000
"""Outcomes a process holds between two flushes; older ones are pushed out (and counted)."""
RESOLVE = 200
"""Duplicate candidates resolved at most per flush; the rest are shown as duplicates."""
MAXLEN = 5_000
"""About how many entries `gateway:inspect` keeps, all processes together."""
MAX_DATA = 1_024
"""Bytes kept of a message's JSON (a suppressed or throttled one is stored nowhere else)."""
MAX_FIELD = 200
"""Characters kept of each other field."""
EVERY = 1.0
"""Seconds between two flushes (and two reads of the watching flag)."""
WATCH_TTL = 5
"""Seconds the watching flag lives unless a feed refreshes it."""

# (outcome, reason, route, at in ms, entry)
_Noted = tuple[str, str, str, int, Entry]


class Summary(msgspec.Struct):
    """The fields of a message the inspector's rows show and filter on."""

    messageId: Any = None
    type: Any = None
    event: Any = None
    userId: Any = None
    anonymousId: Any = None

    def fields(self) -> dict[str, str]:
        """As stream fields: text, cut, absent ones empty."""
        return {
            name: cut(value if isinstance(value, str) else "" if value is None else str(value))
            for name, value in msgspec.structs.asdict(self).items()
        }


_summary = msgspec.json.Decoder(Summary).decode


def summary(data: bytes | str) -> Summary:
    """The row fields of a message's JSON; empty when it is not an object."""
    try:
        return _summary(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return Summary()


class Ring:
    """This process's outcomes that write nothing, while an inspector page is open."""

    def __init__(self, window: int = 0) -> None:
        self.watching = False
        """Whether a page is open (the flag key exists): the hot path's only question."""
        self._window = window
        self._noted: collections.deque[_Noted] = collections.deque(maxlen=CAPACITY)
        self._candidates: collections.deque[tuple[int, Sequence[Entry]]] = collections.deque(
            maxlen=CAPACITY
        )
        self.dropped = 0
        """Outcomes pushed out of a full ring (since the start)."""

    def note(
        self, outcome: str, entries: Sequence[Entry], reason: str = "", route: str = ""
    ) -> None:
        """Keep `entries`' `outcome` for the next flush (call it only while `watching`)."""
        at = int(time.time() * 1000)
        room = CAPACITY - len(self._noted)
        if len(entries) > room:
            self.dropped += len(entries) - room
        for entry in entries:
            self._noted.append((outcome, reason, route or entry.route, at, entry))

    def duplicates(self, entries: Sequence[Entry]) -> None:
        """A flush of `entries` left some out as duplicates: which ones is found later."""
        self._candidates.append((int(time.time() * 1000), entries))

    async def flush(self, redis: AnyRedis) -> None:
        """Read the watching flag; while watched, write what was noted, in one pipeline."""
        try:
            self.watching = bool(await redis.exists(INSPECT_WATCHING))
            if not self.watching:
                self._noted.clear()
                self._candidates.clear()
                return
            await self._resolve(redis)
            if not self._noted:
                return
            noted = list(self._noted)
            self._noted.clear()
            pipe = redis.pipeline(transaction=False)
            for outcome, reason, route, at, entry in noted:
                pipe.xadd(
                    INSPECT_STREAM,
                    _fields(outcome, reason, route, at, entry),  # type: ignore[arg-type]
                    maxlen=MAXLEN,
                    approximate=True,
                )
            await pipe.execute()
        except (RedisError, OSError) as exc:
            tasks.raise_if_cancelled()  # redis-py may turn a cancellation into an error
            log.debug("inspector: could not flush (%s)", exc)

    async def _resolve(self, redis: AnyRedis) -> None:
        """Note, of each flush that had duplicates, the entries that were not added."""
        pending: list[tuple[int, Entry]] = []
        while self._candidates and len(pending) < RESOLVE:
            at, entries = self._candidates.popleft()
            pending += ((at, entry) for entry in entries if entry.message_id)
        self._candidates.clear()  # past RESOLVE: not told apart, not shown
        if not pending or self._window <= 0:
            return
        buckets = event_index.bucket_range(self._window, time.time())
        pipe = redis.pipeline(transaction=False)
        for _, entry in pending:
            prefix = seen_prefix(entry.stream)
            for bucket in buckets:
                pipe.hget(f"{prefix}{bucket}", f"{entry.source}:{entry.message_id}")
        replies: list[Any] = await pipe.execute()
        width = len(buckets)
        where: list[event_index.Where | None] = []
        for position, (_, entry) in enumerate(pending):
            found = [
                event_index.parse(entry.stream, entry.source, value)
                for value in replies[position * width : (position + 1) * width]
                if value is not None
            ]
            where.append(max(found, key=lambda w: event_index.order(w.entry_id), default=None))
        pipe = redis.pipeline(transaction=False)
        for place in where:
            if place is not None:
                pipe.xrange(place.stream, min=place.entry_id, max=place.entry_id, count=1)
        stored: list[Any] = await pipe.execute()
        stored.reverse()
        seen: set[tuple[str, str]] = set()
        for (at, entry), place in zip(pending, where, strict=True):
            kept = stored.pop() if place is not None else []
            key = (entry.source, entry.message_id)
            # The same message twice in one flush: the first may be the one added.
            added = key not in seen and bool(kept) and kept[0][1].get(b"data") == entry.data
            seen.add(key)
            if not added:
                self._noted.append(("duplicate", "already accepted", entry.route, at, entry))

    async def run(self, redis: AnyRedis) -> None:
        """Flush every `EVERY` seconds until cancelled."""
        while True:
            await asyncio.sleep(EVERY)
            await self.flush(redis)


def _fields(outcome: str, reason: str, route: str, at: int, entry: Entry) -> dict[str, str]:
    data = entry.data[:MAX_DATA].decode("utf-8", "replace")
    return {
        "outcome": outcome,
        "reason": cut(reason),
        "route": cut(route),
        "source": cut(entry.source),
        "at": str(at),
        **summary(entry.data).fields(),
        "data": data,
        "truncated": str(len(entry.data)) if len(entry.data) > MAX_DATA else "",
    }


def cut(text: str) -> str:
    """`text` cut to `MAX_FIELD` characters (`gateway.store.refusals` keeps the same bound)."""
    return text if len(text) <= MAX_FIELD else text[:MAX_FIELD] + "…"
