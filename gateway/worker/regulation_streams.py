"""A regulation's pass over the partition streams and every group's dead letters: the
subject's entries deleted (`XDEL`) or collected, a chunk at a time, oldest first."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import cast

from redis.exceptions import ResponseError

from gateway.constants import dead_letter_key
from gateway.ops.text import as_text as text
from gateway.store.redis_client import AnyRedis
from gateway.worker.subject import Subject

CHUNK = 500
"""Entries read at a time; progress is recorded after each chunk."""

Entries = list[tuple[bytes, dict[bytes, bytes]]]
Progress = Callable[[list[str], int], Awaitable[None]]
"""Called after each chunk with the cursor (stream, last entry id) and the count so far."""


class StreamSweep:
    """The streams a regulation goes over, and going over them."""

    def __init__(self, redis: AnyRedis, streams: Sequence[str]) -> None:
        self.redis = redis
        self.streams = list(streams)

    async def keys(self) -> tuple[list[str], list[str]]:
        """The partition streams, and the dead-letter stream of every group reading them."""
        groups: set[str] = set()
        for stream in self.streams:
            try:
                found = await self.redis.xinfo_groups(stream)
            except ResponseError:
                continue  # no such stream yet
            groups |= {text(g["name"]) for g in found}
        return self.streams, [dead_letter_key(g) for g in sorted(groups)]

    async def delete(
        self, subject: Subject, cursor: list[str], count: int, progress: Progress
    ) -> int:
        """Delete the subject's entries, starting after `cursor` when a killed worker left
        one; the number deleted, `count` included."""
        partitions, dead = await self.keys()
        keys = partitions + dead
        resume = cursor[0] if cursor and cursor[0] in keys else None
        for key in keys[keys.index(resume) :] if resume is not None else keys:
            after = cursor[1] if key == resume else None
            async for entries in self._chunks(key, after):
                doomed = [entry_id for entry_id, fields in entries if _matches(subject, fields)]
                if doomed:
                    count += int(await self.redis.xdel(key, *doomed))
                await progress([key, text(entries[-1][0])], count)
        return count

    async def collect(self, subject: Subject) -> dict[str, bytes]:
        """The subject's messages as NDJSON: `streams.ndjson` (undelivered or retained) and
        `dead-letters.ndjson`."""
        partitions, dead = await self.keys()
        out: dict[str, bytes] = {}
        for name, keys in (("streams.ndjson", partitions), ("dead-letters.ndjson", dead)):
            lines: list[bytes] = []
            for key in keys:
                async for entries in self._chunks(key, None):
                    lines += [f[b"data"] + b"\n" for _, f in entries if _matches(subject, f)]
            out[name] = b"".join(lines)
        return out

    async def _chunks(self, key: str, after: str | None) -> AsyncIterator[Entries]:
        """The entries of `key` after the entry id `after` (all when None), a chunk at a
        time; an entry deleted meanwhile is simply not read."""
        low = "-" if after is None else f"({after}"
        while True:
            entries = cast(Entries, await self.redis.xrange(key, min=low, max="+", count=CHUNK))
            if not entries:
                return
            yield entries
            if len(entries) < CHUNK:
                return
            low = f"({text(entries[-1][0])}"


def _matches(subject: Subject, fields: dict[bytes, bytes]) -> bool:
    source = fields.get(b"source")
    return subject.matches_data(fields.get(b"data", b""), text(source) if source else None)
