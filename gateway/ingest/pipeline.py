"""From a decoded request body to stream entries: validate, resolve the source, enrich.

Nothing here speaks HTTP or Redis; the handlers feed it, the committer takes its output.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.constants import events_key
from gateway.errors import INVALID_WRITE_KEY, ApiError, invalid_write_key, too_large
from gateway.ingest.enrich import Arrival, enrich, merge_batch_defaults
from gateway.ingest.plan_enforce import PlanCounts
from gateway.ingest.sources import Source, Sources
from gateway.ingest.suppression import Suppression, dropped
from gateway.ingest.validate import (
    BatchBody,
    MessageView,
    check_depth,
    decode_batch,
    decode_object,
    may_nest_past,
    message_type,
    parse_datetime,
    validate,
)
from gateway.settings import Settings
from gateway.store.entry import Entry
from gateway.store.inspector_ring import Ring
from gateway.store.partitions import partition_of

_encode = msgspec.json.Encoder().encode


ItemErrors = list[tuple[int, ApiError]]
"""The failed items of a batch: (index, error)."""


class Ingest:
    """Validates and enriches messages and makes them stream entries."""

    def __init__(
        self, settings: Settings, sources: Sources, suppression: Suppression | None = None
    ) -> None:
        self.settings = settings
        self.sources = sources
        self.suppression = suppression or Suppression()
        self._streams = [events_key(n) for n in range(settings.partitions)]
        self.plan_counts = PlanCounts()
        """What the sources' tracking plans found (`gateway.ingest.plan_upkeep` pushes it)."""
        self.ring = Ring(settings.dedupe_window)
        """The live inspector's ring of outcomes stored nowhere (`gateway.store.inspector_ring`)."""

    def single(self, body: bytes, kind: str, arrival: Arrival) -> Entry:
        """The entry for the body of a single-message route (the route sets `type`)."""
        message = decode_object(body, "$")
        self.check_depth(body, message, "$")
        key = arrival.write_key(message.get("writeKey"))
        return self.message(message, kind, arrival, self.source(key), "$")

    def batch(self, body: bytes, arrival: Arrival) -> tuple[list[Entry], ItemErrors]:
        """The entries of a batch request, and the items that failed with their index."""
        envelope = decode_batch(body)
        limits = self.settings
        if len(envelope.batch) > limits.max_batch_items:
            raise too_large(
                f"The batch has {len(envelope.batch)} items, more than {limits.max_batch_items}",
                f"the limit is {limits.max_batch_items} items",
            )
        if envelope.sentAt is not None:
            parse_datetime(envelope.sentAt, "$.sentAt")
        key = arrival.write_key(envelope.writeKey)
        shared = self.source(key) if key or self.sources.open else None
        if shared is not None and (enforcer := self.sources.enforcers.get(shared.id)):
            enforcer.admit(arrival.origin)  # the whole request: a plain 400, not 207
        entries: list[Entry] = []
        errors: ItemErrors = []
        for index, raw in enumerate(envelope.batch):
            try:
                entries.append(self._item(raw, f"$.batch[{index}]", envelope, shared, arrival))
            except ApiError as exc:
                errors.append((index, exc))
        if (
            shared is None
            and not entries
            and all(e.message == INVALID_WRITE_KEY for _, e in errors)
        ):
            raise invalid_write_key()  # no usable key anywhere in the request
        return entries, errors

    def _item(
        self,
        raw: msgspec.Raw,
        path: str,
        envelope: BatchBody,
        shared: Source | None,
        arrival: Arrival,
    ) -> Entry:
        limits = self.settings
        if len(raw) > limits.max_message_bytes:
            raise too_large(
                f"Message is larger than {limits.max_message_bytes} bytes",
                f"{path} is {len(raw)} bytes",
            )
        item = decode_object(raw, path)
        # Counted per item: a whole batch always has more brackets than the limit.
        if may_nest_past(bytes(raw), limits.max_depth):
            check_depth(item, limits.max_depth, path)
        # Without a shared source the request has no key: the item's own is the body's.
        source = shared or self.source(arrival.write_key(item.get("writeKey")), item_path=path)
        merge_batch_defaults(item, envelope.context, envelope.integrations, envelope.sentAt)
        return self.message(item, message_type(item, path), arrival, source, path)

    def message(
        self, message: dict[str, Any], kind: str, arrival: Arrival, source: Source, path: str
    ) -> Entry:
        """Validate and enrich one decoded message of type `kind` into its entry: one without
        a stream when a regulation drops it, the rejected stream's when the source's tracking
        plan blocks it."""
        enforcer = self.sources.enforcers.get(source.id)
        if enforcer is not None:
            enforcer.admit(arrival.origin)
        view = validate(message, kind, path)
        if self.suppression.drops(view, kind, arrival, source.id):
            if self.ring.watching:  # not yet enriched: the body's writeKey is still there
                message.pop("writeKey", None)
                shown = Entry("", _encode(message), source.id, "", arrival.route)
                self.ring.note("suppressed", (shown,), "a regulation suppresses its user")
            return dropped(view)
        enrich(message, view, kind, arrival)
        if enforcer is not None:  # after enrich: it may have added the caller's address
            enforcer.apply(message)
        # The plan sees the message as it will be stored (policies applied first), so that
        # a blocked message kept in the rejected stream holds no clear personal field.
        plan = self.sources.plans.get(source.id)
        if (
            plan is not None
            and (blocked := plan.enforce(message, kind, self.plan_counts)) is not None
        ):
            return blocked  # the rejected stream's entry: answered as accepted
        return Entry(
            self._stream_of(view),
            _encode(message),
            source.id,
            message["messageId"],
            arrival.route,
        )

    def source(self, write_key: str | None, item_path: str | None = None) -> Source:
        """The source of `write_key`; the contract's 400 when it is missing, unknown or off."""
        source = self.sources.resolve(write_key)
        if source is None:
            error = invalid_write_key()
            if item_path is not None:
                error.details = f"at `{item_path}.writeKey`"
            raise error
        return source

    def check_depth(self, raw: bytes, value: object, path: str) -> None:
        """A 400 when the decoded `value` nests deeper than the limit."""
        if may_nest_past(raw, self.settings.max_depth):
            check_depth(value, self.settings.max_depth, path)

    def _stream_of(self, view: MessageView) -> str:
        if len(self._streams) == 1:
            return self._streams[0]
        user = view.userId if view.userId not in (None, "") else view.anonymousId
        return self._streams[partition_of(user, len(self._streams))]
