"""Decoding and validating Segment-format messages with msgspec.

The decoders and the per-type schemas are built once. A schema declares only the fields
the gateway checks or uses; every other field of a message passes through untouched,
because validation runs on the decoded dict (`msgspec.convert`) and the dict is what is
stored. Errors carry the JSON path of the offending field (`$.batch[3].userId`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from gateway.errors import ApiError, Code, bad_request, invalid

NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]
Id = str | int
"""userId, anonymousId: a string, or a number as some SDKs send; empty counts as absent."""
RequiredId = NonEmptyStr | int
"""groupId, previousId, and an alias's userId."""


class MessageView(msgspec.Struct, kw_only=True):
    """A validated reading of a message: the fields every type shares, as far as the gateway
    reads them. The message itself stays the decoded dict, which is what is stored."""

    userId: Id | None = None
    anonymousId: Id | None = None
    messageId: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    writeKey: str | None = None


class Identify(MessageView, kw_only=True):
    traits: dict[str, Any] | None = None


class Track(MessageView, kw_only=True):
    event: NonEmptyStr
    properties: dict[str, Any] | None = None


class Page(MessageView, kw_only=True):
    name: str | None = None
    properties: dict[str, Any] | None = None


class Screen(Page, kw_only=True):
    pass


class Group(MessageView, kw_only=True):
    groupId: RequiredId
    traits: dict[str, Any] | None = None


class Alias(MessageView, kw_only=True):
    userId: RequiredId
    previousId: RequiredId


SCHEMAS: dict[str, type[MessageView]] = {
    "identify": Identify,
    "track": Track,
    "page": Page,
    "screen": Screen,
    "group": Group,
    "alias": Alias,
}
TYPES = tuple(SCHEMAS)


class BatchBody(msgspec.Struct):
    """A batch request's body (the envelope). Items stay raw until each is decoded alone,
    so one bad item fails alone and each item's size is known without encoding it again."""

    batch: list[msgspec.Raw]
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    sentAt: str | None = None
    """Kept as sent: items without their own `sentAt` get this string."""
    writeKey: str | None = None


_decode_any = msgspec.json.Decoder().decode
_decode_batch = msgspec.json.Decoder(BatchBody).decode


UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
"""What decoding JSON raises for bytes that are not JSON: catch these, answer `undecodable`.
(`UnicodeDecodeError`: msgspec before 0.23; `RecursionError`: nesting past the stack.)"""


def undecodable(data: bytes | msgspec.Raw, error: BaseException, path: str) -> ApiError:
    """The one 400 for a body (or item at `path`) that did not decode: `Invalid UTF-8` when
    its bytes are not UTF-8, `Invalid JSON` otherwise.

    UTF-8 is checked here, on the failure path only, rather than read from msgspec's error:
    msgspec 0.22 raised `UnicodeDecodeError` where 0.23 raises a `DecodeError` with its own
    text (or, for some bytes, a "malformed" one).
    """
    try:
        bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        return bad_request("Invalid UTF-8", _at(f"{exc.reason} at byte {exc.start}", path))
    if isinstance(error, RecursionError):
        return bad_request("Invalid JSON", f"{path} is nested too deeply")
    return bad_request("Invalid JSON", _at(str(error), path))


def decode_json(data: bytes | msgspec.Raw, path: str) -> Any:
    """Decode any JSON value; a 400 for invalid JSON or UTF-8, naming `path`."""
    try:
        return _decode_any(data)
    except UNDECODABLE as exc:
        raise undecodable(data, exc, path) from None


def decode_object(data: bytes | msgspec.Raw, path: str) -> dict[str, Any]:
    """Decode one message; a 400 unless it is a JSON object."""
    value = decode_json(data, path)
    if not isinstance(value, dict):
        raise bad_request("A message must be a JSON object", f"{path} is {_kind(value)}")
    return value


def decode_batch(data: bytes) -> BatchBody:
    """Decode a batch request's envelope; its items stay raw."""
    try:
        return _decode_batch(data)
    except msgspec.ValidationError as exc:  # JSON, but not a batch
        raise bad_request("Invalid batch", str(exc)) from None
    except UNDECODABLE as exc:
        raise undecodable(data, exc, "$") from None


def may_nest_past(data: bytes, limit: int) -> bool:
    """Cheap bound: JSON with no more brackets than `limit` cannot nest deeper than it."""
    return data.count(b"{") + data.count(b"[") > limit


def check_depth(value: object, limit: int, path: str) -> None:
    """A 400 when `value` nests objects and arrays deeper than `limit`."""
    if _depth(value, limit) > limit:
        raise bad_request(
            "Message nested too deeply", f"{path} nests deeper than {limit} levels", Code.TOO_DEEP
        )


def _depth(value: object, limit: int) -> int:
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse_datetime(value: str, path: str) -> datetime:
    """An ISO-8601 timestamp; a 400 naming `path` otherwise."""
    try:
        return msgspec.convert(value, datetime)
    except msgspec.ValidationError as exc:
        raise invalid("Invalid message", _at(str(exc), path)) from None


def validate(message: dict[str, Any], kind: str, path: str) -> MessageView:
    """Check `message` against the schema of `kind`; a 400 naming the field otherwise."""
    try:
        view = msgspec.convert(message, SCHEMAS[kind])
    except msgspec.ValidationError as exc:
        raise invalid("Invalid message", _at(str(exc), path)) from None
    if _missing(view.userId) and _missing(view.anonymousId):
        raise invalid("Invalid message", f"userId or anonymousId is required - at `{path}`")
    return view


def message_type(message: dict[str, Any], path: str) -> str:
    """The `type` of a batch item; a 400 unless it is one of the six."""
    kind = message.get("type")
    if kind not in SCHEMAS:
        got = "missing" if kind is None else repr(kind)
        raise invalid(
            "Invalid message",
            f"type must be one of {', '.join(TYPES)}; got {got} - at `{path}.type`",
        )
    return str(kind)


def _missing(value: object) -> bool:
    return value is None or value == ""


def _at(error: str, path: str) -> str:
    """Re-root msgspec's `$`-relative path of `error` at `path` (`$.batch[3]`)."""
    if path == "$":
        return error
    if "`$" in error:
        return error.replace("`$", f"`{path}", 1)
    return f"{error} - at `{path}`"


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
