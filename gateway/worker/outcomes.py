"""What becomes of a batch a consumer read: acknowledged, left pending for a retry, or
dead-lettered.

An entry is acknowledged once every destination it routes to accepted it. A failed entry
stays pending: the consumer reclaims it after `reclaim_idle`, and Redis's delivery count is
its attempt, so the count survives crashes. After `max_attempts`, or at once when a
destination says retrying cannot help, it goes to the group's dead-letter stream; so does
an entry handed out more often than that (workers died delivering it), unsent, and one
whose data is not a JSON object. What became of the batch is counted for the admin API
(`gateway.worker.ledger`).
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.store.redis_client import AnyRedis
from gateway.worker import deadletters, ledger
from gateway.worker.deadletters import DeadLetter
from gateway.worker.dispatch import Dispatcher, Outcome
from gateway.worker.message import Message
from gateway.worker.options import ConsumerOptions, Stats

log = logging.getLogger("gateway.worker")

UNREADABLE: dict[str, Any] = {}
"""The body of a message whose data is not a JSON object (compared by identity)."""


async def deliver(
    redis: AnyRedis,
    options: ConsumerOptions,
    dispatcher: Dispatcher,
    batch: list[Message],
    stats: Stats,
) -> None:
    """Send `batch` through `dispatcher` and settle each message; count it in `stats`."""
    letters: list[DeadLetter] = []
    sendable: list[Message] = []
    for message in batch:
        if message.attempt > options.max_attempts:
            # Handed out more often than allowed: workers died delivering it.
            letters.append(
                _letter(
                    message,
                    f"gave up after {options.max_attempts} attempts "
                    "(workers stopped while delivering it)",
                    dispatcher.targets(message),
                    options.max_attempts,
                )
            )
        elif message.body is UNREADABLE:
            letters.append(_letter(message, "not a JSON object", [], message.attempt))
        else:
            sendable.append(message)
    sends = [dispatcher.sends(message) for message in sendable]
    outcomes = await dispatcher.deliver(sendable) if sendable else []
    delivered: list[Message] = []
    retrying: dict[str, list[Message]] = {}
    for message, outcome in zip(sendable, outcomes, strict=True):
        if not outcome:
            delivered.append(message)
        elif message.attempt >= options.max_attempts or not all(f.retry for f in outcome.values()):
            letters.append(_letter(message, _error(outcome), list(outcome), message.attempt))
            dispatcher.forget(message)
        else:
            retrying.setdefault(_error(outcome), []).append(message)
    await deadletters.acknowledge(redis, options.group, [m.key for m in delivered])
    for error, failed in retrying.items():
        # One line per distinct error: an outage fails whole batches alike.
        log.warning(
            "worker: %d message(s) failed (attempt %s of %d): %s; retrying in %gs or more",
            len(failed),
            "/".join(sorted({str(m.attempt) for m in failed})),
            options.max_attempts,
            error,
            options.reclaim_idle,
            extra={"event": "delivery_failed", "group": options.group, "count": len(failed)},
        )
        stats.failed += len(failed)
    for letter in letters:
        log.error(
            "worker: dead-lettered %s %s after %d attempt(s): %s",
            letter.stream,
            letter.id,
            letter.attempts,
            letter.error,
            extra={
                "event": "dead_letter",
                "group": options.group,
                "stream": letter.stream,
                "id": letter.id,
            },
        )
    await deadletters.bury(redis, options.group, letters)
    sent = list(zip(sendable, sends, outcomes, strict=True))
    await ledger.record(redis, options.group, sent, retrying, letters)
    stats.delivered += len(delivered)
    stats.dead += len(letters)
    stats.batches += 1
    log.debug("worker: batch of %d: %d delivered", len(batch), len(delivered))


def _letter(message: Message, error: str, names: list[str], attempts: int) -> DeadLetter:
    return DeadLetter(
        stream=message.stream,
        id=message.id,
        data=message.data,
        source=message.source,
        error=error,
        attempts=attempts,
        destinations=tuple(names),
    )


def _error(outcome: Outcome) -> str:
    return "; ".join(f"{name}: {failure.error}" for name, failure in outcome.items())
