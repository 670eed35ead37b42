"""`gateway status`: per partition the stream length; per group the pending count and lag."""

from __future__ import annotations

import dataclasses
from typing import Any

from redis.exceptions import ResponseError

from gateway.constants import DEAD_LETTER_PREFIX
from gateway.ops.text import as_text as _text
from gateway.store.redis_client import AnyRedis


@dataclasses.dataclass(frozen=True, slots=True)
class GroupState:
    """One consumer group on one partition."""

    group: str
    stream: str
    consumers: int
    pending: int
    lag: int | None
    """Entries not yet handed to the group; None when Redis cannot tell (after deletions)."""
    last_delivered: str


@dataclasses.dataclass(frozen=True, slots=True)
class Status:
    """A snapshot of the streams, the groups reading them, and the dead letters."""

    streams: dict[str, int]
    groups: list[GroupState]
    dead_letters: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        """For `gateway status --json`."""
        return {
            "streams": [{"stream": s, "length": n} for s, n in self.streams.items()],
            "groups": [dataclasses.asdict(g) for g in self.groups],
            "dead_letters": [{"stream": s, "length": n} for s, n in self.dead_letters.items()],
        }

    def render(self) -> str:
        """A table for people."""
        lines = [_row("partition stream", "length")]
        lines += [_row(stream, str(length)) for stream, length in self.streams.items()]
        lines.append("")
        if self.groups:
            lines.append(_row("group", "partition stream", "consumers", "pending", "lag"))
            for g in self.groups:
                lag = "?" if g.lag is None else str(g.lag)
                lines.append(_row(g.group, g.stream, str(g.consumers), str(g.pending), lag))
        else:
            lines.append("no consumer groups yet (start `gateway worker --group NAME`)")
        if self.dead_letters:
            lines.append("")
            lines.append(_row("dead letters", "length"))
            lines += [_row(s, str(n)) for s, n in self.dead_letters.items()]
        return "\n".join(lines)


async def collect(redis: AnyRedis, streams: list[str]) -> Status:
    """Read the state of `streams`, their groups, and every dead-letter stream."""
    pipe = redis.pipeline(transaction=False)
    for stream in streams:
        pipe.xlen(stream)
    lengths = await pipe.execute()
    groups: list[GroupState] = []
    for stream in streams:
        try:
            infos = await redis.xinfo_groups(stream)
        except ResponseError:  # no such stream yet
            infos = []
        for info in infos:
            lag = info.get("lag")
            groups.append(
                GroupState(
                    group=_text(info["name"]),
                    stream=stream,
                    consumers=int(info["consumers"]),
                    pending=int(info["pending"]),
                    lag=None if lag is None else int(lag),
                    last_delivered=_text(info["last-delivered-id"]),
                )
            )
    groups.sort(key=lambda g: (g.group, streams.index(g.stream)))
    dead: dict[str, int] = {}
    async for key in redis.scan_iter(match=f"{DEAD_LETTER_PREFIX}:*", count=1000, _type="stream"):
        name = _text(key)
        dead[name] = int(await redis.xlen(name))
    return Status(
        streams=dict(zip(streams, (int(n) for n in lengths), strict=True)),
        groups=groups,
        dead_letters=dict(sorted(dead.items())),
    )


def _row(*cells: str) -> str:
    widths = (24, 22, 10, 10, 10)
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()
