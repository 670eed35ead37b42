"""`gateway status`: per partition the stream length; per group the pending count and lag.

And what needs a person: a partition stream a group does not read (no worker of it has
created the group there), and a group with lag or pending entries and no live consumer
(none has read within a minute: `gateway.store.gauges.LIVE_WITHIN_MS`). Plus what
trimming removed so far.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from redis.exceptions import ResponseError

from gateway.constants import DEAD_LETTER_PREFIX
from gateway.ops.text import as_text as _text
from gateway.store import retention
from gateway.store.gauges import LIVE_WITHIN_MS
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
    live_consumers: int = 0
    """Consumers that read within a minute."""

    @property
    def stalled(self) -> bool:
        """Entries wait, and no consumer is there to take them."""
        return self.live_consumers == 0 and ((self.lag or 0) > 0 or self.pending > 0)


@dataclasses.dataclass(frozen=True, slots=True)
class Status:
    """A snapshot of the streams, the groups reading them, and the dead letters."""

    streams: dict[str, int]
    groups: list[GroupState]
    dead_letters: dict[str, int]
    trimmed: retention.Trimmed = dataclasses.field(default_factory=retention.Trimmed)

    @property
    def unread(self) -> list[tuple[str, str]]:
        """(group, stream) of each partition stream a group exists beside but does not read."""
        names = sorted({g.group for g in self.groups})
        have = {(g.group, g.stream) for g in self.groups}
        return [(n, s) for n in names for s in self.streams if (n, s) not in have]

    def as_json(self) -> dict[str, Any]:
        """For `gateway status --json`."""
        return {
            "streams": [{"stream": s, "length": n} for s, n in self.streams.items()],
            "groups": [{**dataclasses.asdict(g), "stalled": g.stalled} for g in self.groups],
            "unread": [{"group": g, "stream": s} for g, s in self.unread],
            "dead_letters": [{"stream": s, "length": n} for s, n in self.dead_letters.items()],
            "trimmed": dataclasses.asdict(self.trimmed),
        }

    def problems(self) -> list[str]:
        """One line per thing to look at."""
        lines = [f"group {g} does not read {s}: no worker of it runs" for g, s in self.unread]
        lines += [
            f"group {g.group} has {g.lag if g.lag is not None else '?'} unread and {g.pending} "
            f"pending on {g.stream} and no live consumer"
            for g in self.groups
            if g.stalled
        ]
        return lines

    def render(self) -> str:
        """A table for people."""
        lines = [_row("partition stream", "length")]
        lines += [_row(stream, str(length)) for stream, length in self.streams.items()]
        lines.append("")
        if self.groups:
            lines.append(_row("group", "partition stream", "consumers", "pending", "lag", "live"))
            for g in self.groups:
                lag = "?" if g.lag is None else str(g.lag)
                row = (g.group, g.stream, str(g.consumers), str(g.pending), lag)
                lines.append(_row(*row, str(g.live_consumers)))
        else:
            lines.append("no consumer groups yet (start `gateway worker --group NAME`)")
        if self.dead_letters:
            lines.append("")
            lines.append(_row("dead letters", "length"))
            lines += [_row(s, str(n)) for s, n in self.dead_letters.items()]
        lines.append("")
        lines.append(
            f"trimmed so far: {self.trimmed.acked} acknowledged, "
            f"{self.trimmed.expired} past the maximum age"
        )
        lines += [f"! {problem}" for problem in self.problems()]
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
            consumers = await redis.xinfo_consumers(stream, info["name"])
            live = sum(1 for c in consumers if int(c["idle"]) < LIVE_WITHIN_MS)
            groups.append(
                GroupState(
                    group=_text(info["name"]),
                    stream=stream,
                    consumers=int(info["consumers"]),
                    pending=int(info["pending"]),
                    lag=None if lag is None else int(lag),
                    last_delivered=_text(info["last-delivered-id"]),
                    live_consumers=live,
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
        trimmed=await retention.counts(redis),
    )


def _row(*cells: str) -> str:
    widths = (24, 22, 10, 10, 10, 6)
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()
