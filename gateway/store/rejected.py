"""The rejected-events stream: what a dialect answered 200 for but could not accept.

Commanders Act's API answers 200 to every parseable request, so an event that cannot be
accepted (a wrong token, a missing `event_name`, ...) must not vanish silently: each one
becomes an entry of `gateway:rejected` with the reason, the source, the dialect and the
original JSON, for whoever debugs that source. The entries go through the committer like
accepted ones (durable, spooled while Redis is away); the stream is trimmed to about
`MAXLEN` entries, as nobody consumes it with a group.

Anyone can send such events (a Commanders Act token is public, and a wrong one is recorded
too), so what they may cost Redis is bounded: an entry has no messageId, so the dedupe
script keeps no state for it; its text fields are cut to `MAX_FIELD` characters and the
body of a refused caller's event to `REFUSED_BODY` bytes; and the stream to `MAXLEN`
entries. See docs/durability.md for the resulting bound.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from redis.exceptions import RedisError

from gateway.constants import REJECTED_STREAM
from gateway.ops.quiet import INTERVAL, Quiet
from gateway.store.entry import Entry
from gateway.store.redis_client import AnyRedis

log = logging.getLogger(__name__)

MAXLEN = 10_000
"""About how many rejected events the stream keeps (the newest): `XTRIM MAXLEN ~`."""

REFUSED_BODY = 1024
"""Bytes of the body kept for an event whose caller was refused (no valid token): enough to
tell what was sent (a typical event is under 1 KB), and a bound on what anyone may store."""
MAX_FIELD = 100
"""Characters kept of a text field from the request (route, site id, source, reason)."""

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
    violations: list[dict[str, Any]] | None = None,
) -> Entry:
    """The stream entry of one rejected event; `body` is its JSON as the client sent it.

    A body longer than `max_body` (a malformed batch envelope, or any event of a refused
    caller past `REFUSED_BODY`) is kept as its first `max_body` bytes of text, with
    `truncated` set to its length, to bound what one entry holds. The entry has no
    messageId: the store keeps no dedupe state for it. `violations`: a message blocked by
    its source's tracking plan, what it broke (a bounded list).
    """
    record: dict[str, Any] = {
        "reason": _cut(reason),
        "source": _cut(source),
        "dialect": dialect,
        "route": _cut(route),
        "siteId": _cut(site_id),
        "index": index,
        "receivedAt": received_at,
    }
    if len(body) <= max_body:
        record["body"] = msgspec.Raw(body)
    else:
        record["body"] = _excerpt(body, max_body)
        record["truncated"] = len(body)
    if violations is not None:
        record["violations"] = violations
    return Entry(REJECTED_STREAM, _encode(record), _cut(source) or "", "")


def _excerpt(body: bytes, size: int) -> str:
    """The start of `body` as text taking at most about `size` bytes once JSON-encoded
    (control characters and invalid UTF-8 take several bytes each)."""
    text = body[:size].decode("utf-8", "replace")
    while len(_encode(text)) > size + 2:
        text = text[: len(text) * 3 // 4]
    return text


def _cut(text: str | None) -> str | None:
    return text if text is None or len(text) <= MAX_FIELD else text[:MAX_FIELD] + "…"


class Reporter:
    """Logs rejections without flooding the log: the first at once, then at most one line
    per `interval` seconds with the count since the last line (a misconfigured client may
    send thousands a second; the stream holds the details). See `gateway.ops.quiet`."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.total = 0
        """Events rejected since the start (this process)."""
        self._quiet = Quiet(interval)
        self._unlogged = 0

    def note(self, count: int, latest: str) -> None:
        """Count `count` rejected events; `latest` describes the last (never a credential)."""
        self.total += count
        self._unlogged += count
        if self._quiet.warning(
            log,
            "events_rejected",
            "%d event(s) rejected to %s (%d since the start); latest: %s",
            self._unlogged,
            REJECTED_STREAM,
            self.total,
            latest,
        ):
            self._unlogged = 0


async def trim(redis: AnyRedis) -> None:
    """Trim the stream to about `MAXLEN` entries; best effort (the next rejection retries).

    `redis` is the app's fail-fast client: a Redis that is away costs at most its timeout.
    """
    try:
        await redis.xtrim(REJECTED_STREAM, maxlen=MAXLEN, approximate=True)
    except (RedisError, OSError) as exc:
        log.debug("could not trim %s (%s); the next rejection tries again", REJECTED_STREAM, exc)
