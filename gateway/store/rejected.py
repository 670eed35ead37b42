"""The rejected-events stream: what a dialect answered 200 for but could not accept.

Commanders Act's API answers 200 to every parseable request, so an event that cannot be
accepted (a wrong token, a missing `event_name`, ...) must not vanish silently: each one
becomes an entry of `gateway:rejected` with the reason, the source, the dialect and the
original JSON, for whoever debugs that source. The entries go through the committer like
accepted ones (durable, spooled while Redis is away); the stream is trimmed to about
`MAXLEN` entries, as nobody consumes it with a group.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import msgspec
from redis.exceptions import RedisError

from gateway.constants import REJECTED_STREAM
from gateway.store.entry import Entry
from gateway.store.redis_client import AnyRedis

log = logging.getLogger(__name__)

MAXLEN = 10_000
"""About how many rejected events the stream keeps (the newest): `XTRIM MAXLEN ~`."""

_encode = msgspec.json.Encoder().encode


def entry(
    reason: str,
    *,
    source: str | None,
    dialect: str,
    body: bytes,
    received_at: str,
    route: str,
    site_id: str | None,
    index: int | None,
    max_body: int,
) -> Entry:
    """The stream entry of one rejected event; `body` is its JSON as the client sent it.

    A body longer than `max_body` (only a malformed batch envelope can be) is kept as its
    first `max_body` bytes of text, with `truncated` set, to bound what one entry holds.
    """
    record: dict[str, Any] = {
        "reason": reason,
        "source": source,
        "dialect": dialect,
        "route": route,
        "siteId": site_id,
        "index": index,
        "receivedAt": received_at,
    }
    if len(body) <= max_body:
        record["body"] = msgspec.Raw(body)
    else:
        record["body"] = body[:max_body].decode("utf-8", "replace")
        record["truncated"] = len(body)
    return Entry(REJECTED_STREAM, _encode(record), source or "", str(uuid.uuid4()))


class Reporter:
    """Logs rejections without flooding the log: the first at once, then at most one line
    per `interval` seconds with the count since the last line (a misconfigured client may
    send thousands a second; the stream holds the details)."""

    def __init__(self, interval: float = 10.0) -> None:
        self.total = 0
        """Events rejected since the start (this process)."""
        self._interval = interval
        self._unlogged = 0
        self._next_line = 0.0

    def note(self, count: int, latest: str) -> None:
        """Count `count` rejected events; `latest` describes the last (never a credential)."""
        self.total += count
        self._unlogged += count
        now = time.monotonic()
        if now < self._next_line:
            return
        log.warning(
            "%d event(s) rejected to %s (%d since the start); latest: %s",
            self._unlogged,
            REJECTED_STREAM,
            self.total,
            latest,
        )
        self._unlogged = 0
        self._next_line = now + self._interval


async def trim(redis: AnyRedis) -> None:
    """Trim the stream to about `MAXLEN` entries; best effort (the next rejection retries).

    `redis` is the app's fail-fast client: a Redis that is away costs at most its timeout.
    """
    try:
        await redis.xtrim(REJECTED_STREAM, maxlen=MAXLEN, approximate=True)
    except (RedisError, OSError) as exc:
        log.debug("could not trim %s (%s); the next rejection tries again", REJECTED_STREAM, exc)
