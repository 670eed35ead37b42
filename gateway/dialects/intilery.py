"""Intilery messages as Segment messages: which type each is, and what the gateway adds.

Intilery's bodies are Segment's minus `type`: the action in the path says it, and `event`
repeats it (`"identify"`, `"page"`) or, for a track, is the event's name. In a batch each
item's `event` names its method, anything else being a track of that name. The mapping
changes only that: `event` is removed where it merely names the method, and
`context.intilery` records the path's client, account and brand. Everything else goes to
the shared validate -> enrich path unchanged. Nothing here speaks HTTP or Redis.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from gateway.errors import invalid

SINGLE_ACTIONS = ("identify", "track", "page", "screen")
"""The actions of the one-message routes: the path sets the message's type."""
BATCH_METHODS = ("identify", "page", "screen", "group")
"""Values of a batch item's `event` that name its method; any other value is a track."""

_LOOSE_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?=[T ])")


class Account(NamedTuple):
    """The path's account: recorded as `context.intilery` on every message."""

    client: str
    account: str
    brand: str

    def as_context(self) -> dict[str, str]:
        """The `context.intilery` object."""
        return {"clientId": self.client, "accountId": self.account, "brandId": self.brand}


def single(message: dict[str, Any], action: str, account: Account) -> str:
    """Map the body of the `action` route in place; its Segment type.

    On identify, page and screen `event` may be left out, but if sent it must be the
    action: a body sent to the wrong route is refused rather than stored as the wrong type.
    """
    if action != "track":
        event = message.get("event")
        if event is not None and event != action:
            raise invalid(
                "Invalid message",
                f'event must be "{action}" on /v1/{action}; got {event!r} - at `$.event`',
            )
        message.pop("event", None)
    _finish(message, account)
    return action


def batch_item(message: dict[str, Any], account: Account, path: str) -> str:
    """Map one batch item in place (after the batch's `context` is merged); its type."""
    event = message.get("event")
    if not isinstance(event, str) or not event:
        raise invalid(
            "Invalid message",
            f"event must name the method ({', '.join(BATCH_METHODS)}) or the tracked "
            f"event; got {'nothing' if event is None else repr(event)} - at `{path}.event`",
        )
    kind = "track"
    if event in BATCH_METHODS:
        kind = event
        del message["event"]
    _finish(message, account)
    return kind


def _finish(message: dict[str, Any], account: Account) -> None:
    timestamp = message.get("timestamp")
    if isinstance(timestamp, str):
        message["timestamp"] = pad_date(timestamp)
    context = message.get("context")
    if context is None:
        message["context"] = {"intilery": account.as_context()}
    elif isinstance(context, dict):
        context["intilery"] = account.as_context()
    # else: not an object; validation refuses it with its path.


def pad_date(timestamp: str) -> str:
    """`2015-2-02T00:30:08.276Z` -> `2015-02-02T00:30:08.276Z`.

    Intilery's own batch example has single-digit months, which ISO-8601 does not allow;
    padding them keeps such messages (and the batch around them) from being refused.
    """
    match = _LOOSE_DATE.match(timestamp)
    if match is None:
        return timestamp
    year, month, day = match.groups()
    return f"{year}-{int(month):02d}-{int(day):02d}{timestamp[match.end() :]}"
