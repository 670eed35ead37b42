"""What the gateway adds to a message: ids, timestamps, the caller's address, batch defaults."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any

from gateway.ingest.validate import MessageView
from gateway.ops import timestamps


@dataclasses.dataclass(slots=True)
class Arrival:
    """What the HTTP request tells about every message in it."""

    received_at: datetime
    ip: str | None = None
    """The caller's address (after trusted proxies)."""
    browser: bool = False
    """The request carried an `Origin` header: a browser sent it."""
    origin: str | None = None
    """The `Origin` header, as sent (a source's `allowed_origins` checks it)."""
    basic_key: str | None = None
    """The writeKey from HTTP Basic auth."""
    query_key: str | None = None
    """The writeKey from the `writeKey` query parameter."""
    received_iso: str = ""
    """`received_at` in ISO-8601, computed once for every message of the request."""
    route: str = ""
    """The route the request matched (`/v1/track`), kept in the messageId index."""

    # Not frozen: a frozen dataclass sets each field through `object.__setattr__`, which
    # made this, built once per request, cost twice as much. Nothing changes it after.

    def __post_init__(self) -> None:
        if not self.received_iso:
            self.received_iso = timestamps.iso(self.received_at)

    def write_key(self, body_key: object = None, pixel_key: object = None) -> str | None:
        """The request's writeKey, in the contract's order (SPEC.md "The writeKey"): the HTTP
        Basic username, the body's `writeKey` (`body_key`), the `writeKey` query parameter,
        the one inside a pixel's `data` (`pixel_key`). Empty and non-string values count
        as absent. Every route that takes a writeKey asks here."""
        return self.basic_key or _key(body_key) or self.query_key or _key(pixel_key)


def _key(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def merge_batch_defaults(
    message: dict[str, Any],
    context: dict[str, Any] | None,
    integrations: dict[str, Any] | None,
    sent_at: str | None,
) -> None:
    """Give a batch item the batch's `context`, `integrations` and `sentAt`; its own keys win."""
    for field, shared in (("context", context), ("integrations", integrations)):
        if not shared:
            continue
        own = message.get(field)
        if own is None:
            message[field] = dict(shared)
        elif isinstance(own, dict):
            message[field] = {**shared, **own}
    if sent_at is not None and message.get("sentAt") is None:
        message["sentAt"] = sent_at


def enrich(message: dict[str, Any], view: MessageView, kind: str, arrival: Arrival) -> None:
    """Add the gateway's fields to a validated message, in place.

    `view` is the validated reading of `message` (parsed timestamps among it).
    """
    message.pop("writeKey", None)
    message["type"] = kind
    if view.messageId is None:
        message["messageId"] = str(uuid.uuid4())
    message["receivedAt"] = arrival.received_iso
    client_time = view.originalTimestamp or view.timestamp
    if "originalTimestamp" not in message and view.timestamp is not None:
        message["originalTimestamp"] = message["timestamp"]
    if client_time is None:
        message["timestamp"] = arrival.received_iso
    elif view.timestamp is not None and view.originalTimestamp is not None:
        # Both sent (RudderStack's server SDKs: `originalTimestamp` is the SDK's own clock
        # when the call was made): `timestamp` is the caller's event time, a backfill's for
        # one, kept as sent as rudder-server keeps it (docs/decisions.md).
        pass
    elif view.sentAt is not None:
        message["timestamp"] = timestamps.iso(
            timestamps.corrected(arrival.received_at, view.sentAt, client_time)
        )
    elif view.timestamp is None:
        message["timestamp"] = message["originalTimestamp"]
    # else: a timestamp sent without sentAt (a historical import) is kept as sent.
    _add_ip(message, arrival)


def _add_ip(message: dict[str, Any], arrival: Arrival) -> None:
    if arrival.ip is None:
        return
    context = message.get("context")
    if context is None:
        if arrival.browser:
            message["context"] = {"ip": arrival.ip}
        return
    if context.get("ip"):
        return
    if arrival.browser or context.get("direct") is True:
        context["ip"] = arrival.ip
