"""A batch's deliveries, counted per destination and source for the admin API's
`/v1/deliveries`, and the last error of each message left for a retry (`/v1/events`).

Counted in memory while the batch settles and written in one pipeline after it
(`gateway.store.deliveries`): one round trip per batch, never one per message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.store.deliveries import NO_DESTINATION, Tally
from gateway.store.redis_client import AnyRedis
from gateway.worker.deadletters import DeadLetter
from gateway.worker.dispatch import Outcome
from gateway.worker.message import Message


async def record(
    redis: AnyRedis,
    group: str,
    sent: Sequence[tuple[Message, Sequence[str], Outcome]],
    retrying: Mapping[str, Sequence[Message]],
    letters: Sequence[DeadLetter],
) -> None:
    """Count `sent` (each message, the destinations it went to, what they refused), the
    messages `retrying` (by error) and the dead `letters`; write it all at once."""
    tally = Tally(group)
    for message, names, outcome in sent:
        for name in names:
            tally.add("failed" if name in outcome else "delivered", name, message.source)
            if message.attempt > 1:
                tally.add("retried", name, message.source)
        if not outcome and message.attempt > 1:
            tally.settled(message.stream, message.id)
    for error, messages in retrying.items():
        for message in messages:
            tally.failed(message.stream, message.id, error)
    for letter in letters:
        for name in letter.destinations or (NO_DESTINATION,):
            tally.add("dead", name, letter.source)
        if letter.attempts > 1:
            tally.settled(letter.stream, letter.id)
    await tally.write(redis)
