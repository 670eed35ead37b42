"""Where `gateway replay` sends an archive's messages: destinations, or the streams again."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Protocol

from redis.exceptions import RedisClusterException, RedisError

from gateway.constants import events_key
from gateway.store.entry import Entry
from gateway.store.partitions import partition_of
from gateway.store.writers import EntryWriter
from gateway.worker.archive_reader import Archived
from gateway.worker.dispatch import Dispatcher
from gateway.worker.message import Message

log = logging.getLogger("gateway.worker")


class Stopped(Exception):
    """A batch kept failing: the replay stops where it is (and can be resumed)."""


@dataclasses.dataclass(slots=True)
class Sent:
    """What became of a batch."""

    delivered: int = 0
    refused: int = 0
    """Refused for good (a destination said retrying cannot help)."""
    duplicates: int = 0
    """Dropped by the streams' dedupe: the gateway had them already."""


class Target(Protocol):
    """Where the replay sends."""

    async def send(self, batch: Sequence[Archived]) -> Sent:
        """Send `batch`; `Stopped` if it cannot."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def _backoff(attempt: int) -> float:
    return float(min(30, 2 ** (attempt - 1)))


class DestinationTarget:
    """The worker's destinations, with their in-place retries, then `max_attempts` of ours."""

    def __init__(self, dispatcher: Dispatcher, max_attempts: int) -> None:
        self.dispatcher = dispatcher
        self.max_attempts = max_attempts

    async def send(self, batch: Sequence[Archived]) -> Sent:
        """Deliver; a message refused for good is logged and counted, not retried."""
        messages = [
            Message(stream="archive", id=f"{m.source}:{m.message_id}", data=m.data, body=m.body,
                    source=m.source)
            for m in batch
        ]  # fmt: skip
        sent = Sent()
        for attempt in range(1, self.max_attempts + 1):
            outcomes = await self.dispatcher.deliver(messages)
            again: list[Message] = []
            errors: set[str] = set()
            for message, outcome in zip(messages, outcomes, strict=True):
                if not outcome:
                    sent.delivered += 1
                elif all(f.retry for f in outcome.values()):
                    again.append(message)
                    errors.update(f"{n}: {f.error}" for n, f in outcome.items())
                else:
                    sent.refused += 1
                    self.dispatcher.forget(message)
                    log.error("replay: %s refused for good: %s", message.id, outcome)
            if not again:
                return sent
            messages = again
            if attempt < self.max_attempts:
                log.warning(
                    "replay: %d message(s) failed (attempt %d of %d): %s",
                    len(again), attempt, self.max_attempts, "; ".join(sorted(errors)),
                )  # fmt: skip
                await asyncio.sleep(_backoff(attempt))
        raise Stopped(f"{len(messages)} message(s) failing after {self.max_attempts} attempts")

    async def close(self) -> None:
        """Close the destinations."""
        await self.dispatcher.close()


class StreamsTarget:
    """Back into `gateway:events:{n}`, each message in its user's partition, with its
    `messageId`: the gateway's dedupe drops what the streams still remember."""

    def __init__(self, writer: EntryWriter, partitions: int, max_attempts: int) -> None:
        self.writer = writer
        self.partitions = partitions
        self.max_attempts = max_attempts

    async def send(self, batch: Sequence[Archived]) -> Sent:
        """Add the batch; retried while Redis fails."""
        entries = [
            Entry(events_key(partition_of(_user(m), self.partitions)), m.data, m.source,
                  m.message_id)
            for m in batch
        ]  # fmt: skip
        for attempt in range(1, self.max_attempts + 1):
            try:
                added = await self.writer.write(entries)
            except (RedisError, RedisClusterException, OSError) as exc:
                if attempt == self.max_attempts:
                    raise Stopped(f"Redis: {exc}") from None
                log.warning("replay: Redis: %s (attempt %d)", exc, attempt)
                await asyncio.sleep(_backoff(attempt))
            else:
                return Sent(delivered=added, duplicates=len(entries) - added)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close the writer's connections."""
        await self.writer.close()


def _user(message: Archived) -> object:
    user = message.body.get("userId")
    return user if user not in (None, "") else message.body.get("anonymousId")
