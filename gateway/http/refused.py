"""Refused messages noted for the admin API's event lookup and the live inspector
(`gateway.store.refusals`): the messageId (and the fields the inspector shows) of each
refused message whose body could be read, and the answer's reason; a request refused
before its body was read, with its route and reason only.

Only on a refusal: the body is decoded again for its messageIds, which an accepted request
never pays for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import msgspec
from aiohttp import web

from gateway.errors import ApiError
from gateway.http.app_keys import REFUSALS
from gateway.ingest.enrich import Arrival
from gateway.ops import timestamps
from gateway.store.inspector_ring import Summary


class _Batch(msgspec.Struct):
    batch: list[msgspec.Raw] = []


_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)
"""A body that is not JSON, not an object, or nested past what msgspec decodes (the depth
limit refused it): no messageId to read."""
_summary = msgspec.json.Decoder(Summary).decode
_batch = msgspec.json.Decoder(_Batch).decode


def reason(error: ApiError) -> str:
    """What the answer said: its Message, and its Details when it has some."""
    return f"{error.message}: {error.details}" if error.details else error.message


def single(request: web.Request, body: bytes, arrival: Arrival, error: ApiError) -> None:
    """Note the refused message of a single-message route."""
    shown = Summary()
    with contextlib.suppress(*_UNREADABLE):  # no messageId to read
        shown = _summary(body)
    request.app[REFUSALS].note(
        shown.messageId, reason(error), arrival.route, arrival.received_iso, shown=shown
    )


def request_refused(request: web.Request, error: ApiError) -> None:
    """Note a request refused before its body was read (or with no body to read): its
    route and reason, for the live inspector."""
    resource = request.match_info.route.resource
    request.app[REFUSALS].note(
        "", reason(error), "" if resource is None else resource.canonical, timestamps.received()[1]
    )


def batch(
    request: web.Request, body: bytes, arrival: Arrival, errors: Iterable[tuple[int, ApiError]]
) -> None:
    """Note the refused items of a batch: `errors` are (index, error)."""
    try:
        items = _batch(body).batch
    except _UNREADABLE:
        return
    refusals = request.app[REFUSALS]
    for index, error in errors:
        if 0 <= index < len(items):
            try:
                shown = _summary(items[index])
            except _UNREADABLE:
                shown = Summary()
            refusals.note(
                shown.messageId, reason(error), arrival.route, arrival.received_iso, shown=shown
            )


def whole_batch(request: web.Request, body: bytes, arrival: Arrival, error: ApiError) -> None:
    """Note every item of a batch refused as a whole (e.g. no usable writeKey)."""
    try:
        count = len(_batch(body).batch)
    except _UNREADABLE:
        return
    batch(request, body, arrival, ((index, error) for index in range(count)))
