"""Timestamps: the gateway's clock, ISO-8601 output, and client clock-skew correction."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> datetime:
    """The gateway's clock, in UTC."""
    return datetime.now(UTC)


_last_received: tuple[int, datetime, str] = (-1, datetime.min, "")


def received() -> tuple[datetime, str]:
    """The gateway's clock to the millisecond, and the same in ISO-8601 (`iso`).

    Made once per millisecond: under load many requests arrive within one, and each needs
    both (`receivedAt`, and the base of the corrected `timestamp`).
    """
    global _last_received
    milliseconds = time.time_ns() // 1_000_000
    last = _last_received
    if last[0] != milliseconds:
        seconds, rest = divmod(milliseconds, 1000)
        moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest * 1000)
        last = _last_received = (milliseconds, moment, iso(moment))
    return last[1], last[2]


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and `Z`: `2024-05-01T12:00:00.123Z`."""
    if moment.tzinfo is not UTC:
        moment = _aware(moment).astimezone(UTC)
    # %-formatting is the fastest way here, and this runs for every message.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond // 1000,
    )


def corrected(received_at: datetime, sent_at: datetime, original: datetime) -> datetime:
    """When the event happened by the gateway's clock: `receivedAt - (sentAt - original)`.

    The client's clock is wrong by the same amount in `sentAt` and in its timestamp, so the
    difference of the two is what the client saw elapse, free of its clock's error. When
    that difference would put the event outside the years 1-9999 (clocks thousands of years
    apart), no such time exists: `received_at` stands in, as for a message with no time.
    """
    try:
        return received_at - (_aware(sent_at) - _aware(original))
    except OverflowError:
        return received_at


def _aware(moment: datetime) -> datetime:
    # A timestamp without an offset is taken as UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
