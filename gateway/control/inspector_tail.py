"""The live inspector's feed on the admin side: one reader per process for every open page.

While a page is open, the tail reads the new entries of every stream the inspector shows,
`TICK` seconds apart, one `XREAD` per stream in one pipeline (no `BLOCK`: it works alike
on a cluster), and hands each page the rows its filters match. It never touches the hot
path: the gateway's requests do not know it exists, except through the watching flag it
refreshes (`gateway.store.inspector_ring`).

When busy it samples, and says so: a stream with more than `READ_CAP` new entries in one
tick is skipped ahead to its newest (what was skipped is counted from `XINFO STREAM`'s
`entries-added`), and a page gets at most `ROWS_PER_SECOND` rows a second, the rest
counted as matched but not shown. Each second every page gets those counts and the rates
(messages a second per source and outcome, of everything read, over `HISTORY` seconds).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import msgspec
from redis.exceptions import RedisError, ResponseError

from gateway.constants import INSPECT_STREAM, INSPECT_WATCHING, REFUSED_STREAM, REJECTED_STREAM
from gateway.control.inspector_rows import Filters, Row, row_of
from gateway.ops import tasks
from gateway.store.inspector_ring import WATCH_TTL
from gateway.store.redis_client import AnyRedis

log = logging.getLogger(__name__)

TICK = 0.25
"""Seconds between two reads."""
READ_CAP = 250
"""Entries read per stream and tick (1,000 a second); more, and the stream is skipped ahead
(sampled): the reader shares its process with the public listener."""
ROWS_PER_SECOND = 50
"""Rows sent to one page a second at most; the others are counted, not shown."""
HISTORY = 300
"""Seconds of rates kept (and shown)."""
QUEUE = 2_000
"""Messages waiting for a slow page at most; past it, it misses rows (counted)."""

_encode = msgspec.json.Encoder().encode
Rates = dict[int, collections.Counter[tuple[str, str]]]


def event(name: str, data: object) -> bytes:
    """One Server-Sent Event."""
    return b"event: %s\ndata: %s\n\n" % (name.encode(), _encode(data))


class Page:
    """One open page: its filters, what waits to be sent, this second's counts."""

    def __init__(self, filters: Filters) -> None:
        self.filters = filters
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE)
        self.shown = 0
        self.matched = 0

    def offer(self, row: Row) -> None:
        """Send `row` if it matches and this second's budget allows."""
        if not self.filters.matches(row):
            return
        self.matched += 1
        if self.shown < ROWS_PER_SECOND and self.queue.qsize() < QUEUE:
            self.shown += 1
            self.queue.put_nowait(event("row", row))

    def end(self) -> None:
        """Make the feed stop: what waits is dropped, and the end put in its place."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(b"")

    def second(self, unread: int, rates: list[list[Any]]) -> None:
        """End of a second: its counts, then start the next."""
        stats = {"shown": self.shown, "matched": self.matched, "unread": unread, "rates": rates}
        if self.queue.qsize() < QUEUE:
            self.queue.put_nowait(event("stats", stats))
        self.shown = self.matched = 0


@dataclasses.dataclass(slots=True)
class _Cursor:
    last: str
    added: int = 0
    """`entries-added` when the cursor was last synced with `XINFO STREAM`."""
    read: int = 0
    """Entries read since then."""


class Tail:
    """This process's reader of the inspector's streams, running while a page is open."""

    OTHERS = (REFUSED_STREAM, REJECTED_STREAM, INSPECT_STREAM)
    """The streams read besides the partitions'."""

    def __init__(self, redis: AnyRedis, streams: Sequence[str]) -> None:
        self.redis = redis
        self.streams = list(streams)
        self.pages: set[Page] = set()
        self.rates: Rates = {}
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._unread = 0

    async def open(self, page: Page) -> None:
        """Start sending to `page` (and start reading if it is the first)."""
        self.pages.add(page)
        async with self._starting:  # pages opened at once start one reader
            if self._task is None or self._task.done():
                await self.watch()  # every process notes from its next flush on
                cursors = await self._cursors()
                self._task = asyncio.create_task(self._run(cursors))

    async def close(self, page: Page) -> None:
        """Stop sending to `page` (and stop reading after the last)."""
        self.pages.discard(page)
        if not self.pages and self._task is not None:
            task, self._task = self._task, None
            await tasks.cancel(task)

    async def watch(self) -> None:
        """Tell every gateway process a page is open, for `WATCH_TTL` seconds."""
        await self.redis.set(INSPECT_WATCHING, b"1", ex=WATCH_TTL)

    def seed(self, rows: Sequence[Row]) -> None:
        """Rates of the minutes before the first page opened, from its backfill."""
        if self.rates:
            return
        for row in rows:
            self._count(row)

    def history(self) -> list[list[Any]]:
        """Every second's counts kept: [second, source, outcome, count]."""
        return [
            [second, source, outcome, count]
            for second, counts in sorted(self.rates.items())
            for (source, outcome), count in counts.items()
        ]

    def _count(self, row: Row) -> int:
        second = row.at // 1000
        self.rates.setdefault(second, collections.Counter())[(row.source, row.outcome)] += 1
        return second

    async def _cursors(self) -> dict[str, _Cursor]:
        seconds, micros = await self.redis.time()
        start = f"{seconds * 1000 + micros // 1000}-0"
        added = await self._added(self.streams)
        return {s: _Cursor(start, added.get(s, (0, start))[0]) for s in self.streams}

    async def _added(self, streams: Sequence[str]) -> dict[str, tuple[int, str]]:
        """`entries-added` and the last id of each stream that exists."""
        pipe = self.redis.pipeline(transaction=False)
        for stream in streams:
            pipe.xinfo_stream(stream)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        out = {}
        for stream, info in zip(streams, replies, strict=True):
            if isinstance(info, dict):
                last = info.get("last-generated-id", b"0-0")
                last = last.decode() if isinstance(last, bytes) else str(last)
                out[stream] = (int(info.get("entries-added", 0) or 0), last)
        return out

    async def _run(self, cursors: dict[str, _Cursor]) -> None:
        loop = asyncio.get_running_loop()
        next_second = loop.time() + 1.0
        next_watch = loop.time() + WATCH_TTL / 2
        sent_until = 0
        while True:
            try:
                await self._read(cursors)
            except (RedisError, OSError) as exc:
                tasks.raise_if_cancelled()  # redis-py may turn a cancellation into an error
                log.debug("inspector: read failed (%s)", exc)
            now = loop.time()
            if now >= next_watch:
                next_watch = now + WATCH_TTL / 2
                with contextlib.suppress(RedisError, OSError):
                    await self.watch()
            if now >= next_second:
                next_second = now + 1.0
                sent_until = self._second(sent_until)
            await asyncio.sleep(TICK)

    async def _read(self, cursors: dict[str, _Cursor]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for stream, cursor in cursors.items():
            pipe.xread({stream: cursor.last}, count=READ_CAP)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        full = []
        for stream, reply in zip(cursors, replies, strict=True):
            if isinstance(reply, ResponseError) or not reply:
                continue
            entries = reply[0][1] if isinstance(reply, list) else reply[stream.encode()][0]
            cursor = cursors[stream]
            cursor.last = entries[-1][0].decode()
            cursor.read += len(entries)
            for entry_id, fields in entries:
                row = row_of(stream, entry_id, fields)
                if row is not None:
                    self._count(row)
                    for page in self.pages:
                        page.offer(row)
            if len(entries) >= READ_CAP:
                full.append(stream)
        if full:
            for stream, (added, last) in (await self._added(full)).items():
                cursor = cursors[stream]
                if cursor.added:  # not known at the start when the stream did not exist
                    self._unread += max(0, added - cursor.added - cursor.read)
                cursor.added, cursor.read, cursor.last = added, 0, last

    def _second(self, sent_until: int) -> int:
        """Each page's counts and the seconds of rates completed since `sent_until`."""
        seconds = sorted(self.rates)
        current = seconds[-1] if seconds else 0
        for old in seconds:
            if old < current - HISTORY:
                del self.rates[old]
        fresh = [
            [second, source, outcome, count]
            for second in seconds
            if sent_until < second < current
            for (source, outcome), count in self.rates[second].items()
        ]
        if self._unread and current:
            fresh.append([current - 1, "(not read)", "accepted", self._unread])
        for page in self.pages:
            page.second(self._unread, fresh)
        self._unread = 0
        return max(sent_until, current - 1)
