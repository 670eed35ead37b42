"""Hand a batch to every destination it routes to, and gather what each one refused.

A message is done when every destination it reaches accepted it. What a destination
accepted is remembered (per worker process) until the message is done, so a retry goes
only to the destinations that refused it; a different worker retrying it sends it to all
of them again, which the at-least-once promise allows.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Collection, Mapping, Sequence

from gateway.worker.consent import denied
from gateway.worker.destinations import Destination, Failure, Result
from gateway.worker.message import Message
from gateway.worker.routing import reaches

log = logging.getLogger(__name__)

Outcome = dict[str, Failure]
"""For one message: the destinations that refused it, and why. Empty: delivered."""

REMEMBERED = 100_000
"""At most this many messages' partial deliveries are remembered (oldest forgotten)."""


class Dispatcher:
    """Delivers batches to a fixed set of destinations."""

    def __init__(self, destinations: Sequence[Destination]) -> None:
        if not destinations:
            raise ValueError("a worker needs at least one destination")
        self.destinations = list(destinations)
        self._accepted: collections.OrderedDict[tuple[str, str], set[str]] = (
            collections.OrderedDict()
        )
        self.withheld: dict[tuple[str, str], int] = {}
        """(destination, category) -> messages not sent there for want of consent."""

    @property
    def names(self) -> list[str]:
        """The destinations' names, in order."""
        return [d.name for d in self.destinations]

    def targets(self, message: Message) -> list[str]:
        """The names of the destinations `message` routes to."""
        return [
            d.name
            for d in self.destinations
            if reaches(message.body, d.name) and denied(message.body, d.consent) is None
        ]

    def sends(self, message: Message) -> list[str]:
        """The names of the destinations `deliver` would send `message` to now."""
        return [d.name for d in self.destinations if self._wanted(message, d, None, count=False)]

    async def deliver(
        self,
        messages: Sequence[Message],
        only: Mapping[tuple[str, str], Collection[str]] | None = None,
    ) -> list[Outcome]:
        """Send `messages`; one outcome per message, in order.

        `only` restricts a message (by key) to some destination names (the re-drive uses
        it to reach just the destinations that had refused a dead letter).
        """
        plans: list[tuple[Destination, list[int]]] = []
        for destination in self.destinations:
            indexes = [
                i for i, message in enumerate(messages) if self._wanted(message, destination, only)
            ]
            if indexes:
                plans.append((destination, indexes))
        results = await asyncio.gather(
            *(self._send(d, [messages[i] for i in indexes]) for d, indexes in plans)
        )
        outcomes: list[Outcome] = [{} for _ in messages]
        for (destination, indexes), result in zip(plans, results, strict=True):
            for position, failure in result.failed.items():
                if 0 <= position < len(indexes):
                    outcomes[indexes[position]][destination.name] = failure
        for (destination, indexes), result in zip(plans, results, strict=True):
            for position, index in enumerate(indexes):
                # Only a message that is not done needs to remember who took it.
                if outcomes[index] and position not in result.failed:
                    self._remember(messages[index].key, destination.name)
        for message, outcome in zip(messages, outcomes, strict=True):
            if not outcome:
                self._accepted.pop(message.key, None)
        return outcomes

    def forget(self, message: Message) -> None:
        """Drop what is remembered of `message` (it is done, or dead)."""
        self._accepted.pop(message.key, None)

    async def close(self) -> None:
        """Close every destination."""
        for destination in self.destinations:
            try:
                await destination.close()
            except Exception:
                log.exception("worker: closing destination %s failed", destination.name)

    def _wanted(
        self,
        message: Message,
        destination: Destination,
        only: Mapping[tuple[str, str], Collection[str]] | None,
        count: bool = True,
    ) -> bool:
        name = destination.name
        if only is not None and name not in only.get(message.key, ()):
            return False
        if name in self._accepted.get(message.key, ()):
            return False
        if not reaches(message.body, name):
            return False
        category = denied(message.body, destination.consent)
        if category is None:
            return True
        if count and message.attempt == 1 and only is None:  # once, not at every retry
            key = (name, category)
            self.withheld[key] = self.withheld.get(key, 0) + 1
        return False

    def _remember(self, key: tuple[str, str], name: str) -> None:
        self._accepted.setdefault(key, set()).add(name)
        self._accepted.move_to_end(key)
        while len(self._accepted) > REMEMBERED:
            self._accepted.popitem(last=False)

    async def _send(self, destination: Destination, batch: list[Message]) -> Result:
        try:
            result = await destination.send(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A destination's bug must not kill the worker: the batch is retried, then dead.
            log.exception("worker: destination %s raised", destination.name)
            return Result.all_failed(len(batch), f"{type(exc).__name__}: {exc}")
        if not isinstance(result, Result):
            return Result.all_failed(len(batch), f"send() returned {type(result).__name__}")
        return result
