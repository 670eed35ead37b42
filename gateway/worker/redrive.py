"""Send a group's dead letters again, once the destination is fixed.

Each dead letter goes to the destinations that refused it (those configured now, by name).
Accepted by all of them: it is deleted from the dead-letter stream. Accepted by some: it
is rewritten with the rest. Refused again: it stays as it was. Dead letters naming no
configured destination are left alone and counted as skipped.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import msgspec

from gateway.constants import dead_letter_key
from gateway.store.redis_client import AnyRedis
from gateway.worker import deadletters
from gateway.worker.deadletters import DeadLetter
from gateway.worker.dispatch import Dispatcher
from gateway.worker.message import Message

log = logging.getLogger("gateway.worker")


@dataclasses.dataclass(slots=True)
class RedriveReport:
    """What a re-drive did."""

    delivered: int = 0
    failed: int = 0
    skipped: int = 0

    def line(self) -> str:
        """One line for the terminal."""
        return (
            f"{self.delivered} delivered, {self.failed} refused again (kept), "
            f"{self.skipped} skipped (their destinations are not configured)"
        )


async def redrive(
    redis: AnyRedis,
    group: str,
    dispatcher: Dispatcher,
    batch_size: int = 100,
    limit: int | None = None,
) -> RedriveReport:
    """Re-drive up to `limit` of `group`'s dead letters, oldest first."""
    report = RedriveReport()
    key = dead_letter_key(group)
    # Rewritten letters are appended; stop at the last one that was there at the start.
    newest: Any = await redis.xrevrange(key, count=1)
    if not newest:
        return report
    last = newest[0][0].decode()
    after = "-"
    configured = set(dispatcher.names)
    seen = 0
    while limit is None or seen < limit:
        count = batch_size if limit is None else min(batch_size, limit - seen)
        page = [
            (entry_id, letter)
            for entry_id, letter in await deadletters.read(redis, group, count, after)
            if _not_after(entry_id, last)
        ]
        if not page:
            break
        seen += len(page)
        after = page[-1][0]
        await _redrive_page(redis, key, dispatcher, configured, page, report)
    return report


async def _redrive_page(
    redis: AnyRedis,
    key: str,
    dispatcher: Dispatcher,
    configured: set[str],
    page: list[tuple[str, DeadLetter]],
    report: RedriveReport,
) -> None:
    messages: list[Message] = []
    letters: list[tuple[str, DeadLetter]] = []
    only: dict[tuple[str, str], list[str]] = {}
    for entry_id, letter in page:
        # Letters written for an unreadable message name no destination: every one is due.
        names = [n for n in (letter.destinations or dispatcher.names) if n in configured]
        message = _message(key, entry_id, letter)
        if not names or message is None:
            report.skipped += 1
            continue
        messages.append(message)
        letters.append((entry_id, letter))
        only[message.key] = names
    if not messages:
        return
    outcomes = await dispatcher.deliver(messages, only=only)
    pipe = redis.pipeline(transaction=False)
    for (entry_id, letter), message, outcome in zip(letters, messages, outcomes, strict=True):
        refused = set(outcome)
        remaining = tuple(n for n in only[message.key] if n in refused)
        if not remaining:
            report.delivered += 1
            pipe.xdel(key, entry_id)
            dispatcher.forget(message)
            continue
        report.failed += 1
        error = "; ".join(f"{n}: {outcome[n].error}" for n in remaining)
        log.warning(
            "dead letters: %s (%s %s) refused again: %s", entry_id, letter.stream, letter.id, error
        )
        if len(remaining) < len(only[message.key]):
            rewritten = dataclasses.replace(
                letter, destinations=remaining, error=error, failed_at=""
            )
            pipe.xadd(key, rewritten.fields())  # type: ignore[arg-type]
            pipe.xdel(key, entry_id)
    await pipe.execute()


def _message(key: str, entry_id: str, letter: DeadLetter) -> Message | None:
    try:
        body = msgspec.json.decode(letter.data)
    except msgspec.DecodeError:
        return None
    if not isinstance(body, dict):
        return None
    # Keyed by the dead letter's own id: one source entry may have been buried twice.
    return Message(key, entry_id, letter.data, body, letter.source, letter.attempts + 1)


def _not_after(entry_id: str, last: str) -> bool:
    ms, _, seq = entry_id.partition("-")
    last_ms, _, last_seq = last.partition("-")
    return (int(ms), int(seq or 0)) <= (int(last_ms), int(last_seq or 0))
