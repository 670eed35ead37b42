"""What a consumer is told (`ConsumerOptions`) and what it reports (`Stats`)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class ConsumerOptions:
    """How a consumer reads; the CLI fills it from flags and `GATEWAY_*`."""

    group: str
    consumer: str
    streams: tuple[str, ...]
    batch_size: int = 100
    block: float = 1.0
    """Seconds a read waits for new entries (also how fast a stop is noticed)."""
    reclaim_idle: float = 30.0
    """Seconds an entry may stay unacknowledged before any worker of the group retries it."""
    max_attempts: int = 10
    burst: bool = False
    """Exit once nothing is left to read and nothing is pending in the group."""

    def __post_init__(self) -> None:
        if not self.group or not self.consumer:
            raise ValueError("group and consumer names must not be empty")
        if not self.streams:
            raise ValueError("no streams to read")
        if self.batch_size < 1 or self.max_attempts < 1:
            raise ValueError("batch_size and max_attempts must be 1 or more")
        if self.block <= 0 or self.reclaim_idle <= 0:
            raise ValueError("block and reclaim_idle must be more than 0")


@dataclasses.dataclass(slots=True)
class Stats:
    """What a consumer did; logged as it goes and when it stops."""

    delivered: int = 0
    batches: int = 0
    failed: int = 0
    """Deliveries that failed and were left pending for a retry."""
    dead: int = 0
    reclaimed: int = 0
    withheld: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    """(destination, category) -> messages not sent there for want of consent (the
    dispatcher's count, shared)."""

    def line(self) -> str:
        """One log line."""
        return (
            f"delivered {self.delivered} messages in {self.batches} batches, "
            f"{self.failed} failed attempts (retried), {self.dead} dead-lettered, "
            f"{self.reclaimed} reclaimed"
        )
