"""Refused messages, and why: what the admin API's event lookup answers for a message that
was never accepted (found by its messageId), and what the live inspector shows (every
refusal, with the message's type, event and ids when its body could be read).

A refusal costs no Redis round trip of its own: each process notes it in memory (`note`,
at most `BUFFER` between two writes; more are counted in `dropped` and left out) and writes
what it noted once a second, in one pipeline (`Refusals.run`), to the stream
`gateway:refused`, trimmed as it goes to about `MAXLEN` entries (`XADD MAXLEN ~`). Anyone
may send refused messages, so what they cost Redis is bounded: every field is cut to
`MAX_FIELD` characters (the inspector's bound, shared), so the stream holds at most about
`MAXLEN` entries of under 2 KB (nine fields) whoever sends them; a flood of refusals pushes
older ones out sooner, nothing more.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from typing import Any

from redis.exceptions import RedisError

from gateway.constants import REFUSED_STREAM
from gateway.store.inspector_ring import MAX_FIELD as MAX_FIELD  # one bound for both streams
from gateway.store.inspector_ring import Summary, cut
from gateway.store.redis_client import AnyRedis

log = logging.getLogger(__name__)

MAXLEN = 10_000
"""About how many refusals the stream keeps (the newest), all processes together."""
BUFFER = 1_000
"""Refusals a process holds between two writes; past it, they are dropped (and counted)."""
EVERY = 1.0
"""Seconds between two writes."""
PAGE = 1_000
"""Entries read per call while looking one up."""


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    """One refused message."""

    message_id: str
    reason: str
    route: str
    source: str
    at: str
    """When it was refused (ISO-8601)."""
    type: str = ""
    event: str = ""
    user_id: str = ""
    anonymous_id: str = ""
    """What the live inspector's rows show and filter on, when the body could be read."""

    def fields(self) -> dict[str, str]:
        """The stream entry's fields."""
        return {
            "messageId": self.message_id,
            "reason": self.reason,
            "route": self.route,
            "source": self.source,
            "at": self.at,
            "type": self.type,
            "event": self.event,
            "userId": self.user_id,
            "anonymousId": self.anonymous_id,
        }


class Refusals:
    """This process's refusals not yet written, and the task that writes them."""

    def __init__(self) -> None:
        # (messageId, reason, route, source, at, type, event, userId, anonymousId), as
        # noted: cut when written, off the request's path.
        self._pending: collections.deque[tuple[str, ...]] = collections.deque()
        self.dropped = 0
        """Refusals left out because the buffer was full (since the start)."""

    def note(
        self,
        message_id: object,
        reason: str,
        route: str,
        at: str,
        source: str = "",
        shown: Summary | None = None,
    ) -> None:
        """Keep a refusal for the next write. `at` is when the request arrived (ISO-8601);
        `shown`, the message's fields the inspector shows, when its body could be read. A
        refusal without a messageId (a request refused before its body was read) is kept
        for the inspector, and never found by a lookup."""
        if len(self._pending) >= BUFFER:
            self.dropped += 1
            return
        text = shown.fields() if shown is not None else {}
        self._pending.append(
            (
                message_id if isinstance(message_id, str) else "",
                reason,
                route,
                source,
                at,
                *(text.get(k, "") for k in ("type", "event", "userId", "anonymousId")),
            )
        )

    async def write(self, redis: AnyRedis) -> None:
        """Write what was noted, in one pipeline; kept for the next try if Redis fails."""
        if not self._pending:
            return
        batch = list(self._pending)
        self._pending.clear()
        pipe = redis.pipeline(transaction=False)
        for noted in batch:
            fields = Refusal(*(cut(text) for text in noted)).fields()
            pipe.xadd(REFUSED_STREAM, fields, maxlen=MAXLEN, approximate=True)  # type: ignore[arg-type]
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            log.debug("could not write %d refusals (%s); trying again", len(batch), exc)
            room = BUFFER - len(self._pending)
            self._pending.extendleft(reversed(batch[:room]))

    async def run(self, redis: AnyRedis) -> None:
        """Write every `EVERY` seconds until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(EVERY)
                await self.write(redis)
        finally:
            await self.write(redis)


async def find(redis: AnyRedis, message_id: str) -> Refusal | None:
    """The newest refusal of `message_id` still in the stream, read newest first."""
    wanted = message_id.encode()
    if not wanted:
        return None  # refusals without a messageId are kept for the inspector only
    end = "+"
    while True:
        entries: Any = await redis.xrevrange(REFUSED_STREAM, max=end, min="-", count=PAGE)
        for _, fields in entries:
            if fields.get(b"messageId") == wanted:
                return Refusal(
                    message_id,
                    *(fields.get(k, b"").decode() for k in (b"reason", b"route", b"source", b"at")),
                )
        if len(entries) < PAGE:
            return None
        end = f"({entries[-1][0].decode()}"
