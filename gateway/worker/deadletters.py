"""The dead-letter stream of a group: messages its workers gave up on.

`gateway:dead:{<group>}` holds one entry per message, with the message (`data`, `source`),
where it came from (`stream`, `id`), why it failed (`error`), how many times it was tried
(`attempts`), which destinations refused it (`destinations`, a JSON list) and when
(`failed_at`). The source entry is acknowledged once the dead letter is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import msgspec

from gateway.constants import dead_letter_key
from gateway.ops.timestamps import iso, now
from gateway.store.redis_client import AnyRedis


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message a group gave up on."""

    stream: str
    id: str
    data: bytes
    source: str
    error: str
    attempts: int
    destinations: tuple[str, ...]
    failed_at: str = ""

    def fields(self) -> dict[str, bytes | str]:
        """The stream entry's fields."""
        return {
            "data": self.data,
            "source": self.source,
            "stream": self.stream,
            "id": self.id,
            "error": self.error,
            "attempts": str(self.attempts),
            "destinations": msgspec.json.encode(list(self.destinations)).decode(),
            "failed_at": self.failed_at or iso(now()),
        }

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> DeadLetter:
        """Read an entry written by `fields()`."""

        def text(name: str) -> str:
            return fields.get(name.encode(), b"").decode(errors="replace")

        try:
            names = msgspec.json.decode(fields.get(b"destinations", b"[]"), type=list[str])
        except msgspec.DecodeError:
            names = []
        attempts = text("attempts")
        return cls(
            stream=text("stream"),
            id=text("id"),
            data=fields.get(b"data", b""),
            source=text("source"),
            error=text("error"),
            attempts=int(attempts) if attempts.isdigit() else 0,
            destinations=tuple(names),
            failed_at=text("failed_at"),
        )


async def bury(redis: AnyRedis, group: str, letters: Sequence[DeadLetter]) -> None:
    """Write `letters` to the group's dead-letter stream, then acknowledge their sources.

    Two steps, not one transaction (the keys live in different cluster slots): a crash in
    between leaves the source entry pending, and it is dead-lettered again later.
    """
    if not letters:
        return
    key = dead_letter_key(group)
    pipe = redis.pipeline(transaction=False)
    for letter in letters:
        pipe.xadd(key, letter.fields())  # type: ignore[arg-type]
    await pipe.execute()
    await acknowledge(redis, group, [(letter.stream, letter.id) for letter in letters])


async def acknowledge(redis: AnyRedis, group: str, keys: Sequence[tuple[str, str]]) -> None:
    """XACK each `(stream, id)` in `group`, one command per stream."""
    by_stream: dict[str, list[str]] = {}
    for stream, entry_id in keys:
        by_stream.setdefault(stream, []).append(entry_id)
    if not by_stream:
        return
    pipe = redis.pipeline(transaction=False)
    for stream, ids in by_stream.items():
        pipe.xack(stream, group, *ids)
    await pipe.execute()


async def read(
    redis: AnyRedis, group: str, count: int, after: str = "-"
) -> list[tuple[str, DeadLetter]]:
    """Up to `count` dead letters after the entry id `after` (exclusive), oldest first."""
    start = after if after == "-" else f"({after}"
    entries: Any = await redis.xrange(dead_letter_key(group), min=start, max="+", count=count)
    return [(entry_id.decode(), DeadLetter.from_fields(fields)) for entry_id, fields in entries]
