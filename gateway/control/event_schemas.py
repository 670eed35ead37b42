"""The answers of `/v1/events/{messageId}` and `/v1/deliveries`, as msgspec structs that
also make their OpenAPI schemas (`gateway.control.openapi`)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Status = Literal["pending", "delivered", "dead", "trimmed"]


class GroupStatus(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What one consumer group did with the message."""

    status: Status
    """pending: not yet read, or read and waiting for its (next) attempt; delivered:
    acknowledged; dead: dead-lettered; trimmed: gone from the stream, and not dead."""
    attempts: int | None = None
    """pending: attempts made so far (Redis's delivery count; 0 if not read yet); dead: the
    attempts it was given. Absent for delivered and trimmed (Redis forgets the count)."""
    error: str | None = None
    """pending: the last attempt's error; dead: why it was dead-lettered."""
    deadLetterId: str | None = None
    """dead: its entry in `gateway:dead:{<group>}`."""


class EventView(msgspec.Struct, kw_only=True):
    """An accepted message: where it is, and what each consumer group did with it."""

    messageId: str
    source: str
    route: str | None
    """The route pattern it came by (`/v1/track`); null if not known."""
    receivedAt: str | None
    """When the gateway received it (the message's `receivedAt`; null once trimmed)."""
    stream: str
    partition: int | None
    entryId: str
    message: dict[str, Any] | None
    """The stored message; null once trimmed from the stream."""
    groups: dict[str, GroupStatus]


class RefusedView(msgspec.Struct, kw_only=True):
    """A message that was refused, and why (the newest such refusal)."""

    messageId: str
    refused: str
    """The reason: the answer's Message and Details."""
    route: str
    source: str | None
    at: str


class DeliveryRow(msgspec.Struct, kw_only=True):
    """One minute's deliveries of a group's destination, for one source."""

    minute: str
    """The minute's start (ISO-8601, UTC)."""
    group: str
    destination: str
    source: str
    delivered: int
    retried: int
    failed: int
    dead: int


class DeliveriesView(msgspec.Struct, kw_only=True):
    """`GET /v1/deliveries`."""

    minutes: int
    deliveries: list[DeliveryRow]


STRUCTS: tuple[type[msgspec.Struct], ...] = (EventView, RefusedView, DeliveriesView)
