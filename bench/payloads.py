"""The request bodies the harness sends: what analytics.js in a browser posts.

A body is written as a template in which every `messageId` is the placeholder `ID_MARK`;
the wrk scripts put a fresh id there for each request, so every message is a new one.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec

ID_MARK = "@@MESSAGE_ID@@"
"""Stands for a `messageId` in a body template (a valid JSON string as it is)."""

WRITE_KEY = "wk_bench_7Hq2vLr9Xc"
SOURCE_ID = "bench"
ORIGIN = "https://shop.example.com"

_USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)


def wrk_id(nonce: int, thread: int, counter: int) -> str:
    """The `messageId` bench/wrk.lua writes for message `counter` of a wrk thread (41 chars)."""
    return f"ajs-next-{nonce:08x}{thread:03d}{counter:021d}"


def fill_ids(template: bytes, nonce: int = 0, thread: int = 0) -> bytes:
    """`template` with fresh ids, as bench/wrk.lua makes each request body."""
    parts = template.split(ID_MARK.encode())
    out = [parts[0]]
    for counter, part in enumerate(parts[1:], start=1):
        out += [wrk_id(nonce, thread, counter).encode(), part]
    return b"".join(out)


def track_message(message_id: str = ID_MARK) -> dict[str, Any]:
    """A `track` message as analytics.js (analytics-next) sends it from a product page."""
    return {
        "type": "track",
        "event": "Product Added",
        "properties": {
            "product_id": "507f1f77bcf86cd7",
            "name": "Monopoly",
            "price": 18.99,
            "quantity": 1,
            "currency": "USD",
        },
        "anonymousId": "5f9c8a4e-2b1d-4c7e-9a3f-0e6d1b2c3a4f",
        "messageId": message_id,
        "timestamp": "2026-11-23T09:41:07.412Z",
        "sentAt": "2026-11-23T09:41:07.468Z",
        "context": {
            "page": {
                "path": "/products/monopoly",
                "referrer": "https://www.google.com/",
                "title": "Monopoly | Shop",
                "url": "https://shop.example.com/products/monopoly",
            },
            "userAgent": _USER_AGENT,
            "locale": "en-US",
            "library": {"name": "analytics.js", "version": "npm:next-1.70.0"},
            "campaign": {"name": "winter", "source": "mail", "medium": "email"},
            "screen": {"width": 1512, "height": 982, "density": 2},
        },
        "integrations": {},
        "_metadata": {"bundled": ["Segment.io"], "unbundled": []},
    }


def track_body(message_id: str = ID_MARK) -> bytes:
    """The body of one `POST /v1/t`."""
    return msgspec.json.encode(track_message(message_id))


def batch_body(size: int = 100, message_id: str = ID_MARK) -> bytes:
    """The body of one `POST /v1/batch` of `size` track messages."""
    items = []
    for _ in range(size):
        items.append(track_message(message_id))
    return msgspec.json.encode({"batch": items, "sentAt": "2026-11-23T09:41:07.468Z"})


def basic_auth(write_key: str = WRITE_KEY) -> str:
    """The `Authorization` header analytics.js sends: the writeKey as the Basic username."""
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def sources_toml(plan: str | None = None) -> str:
    """A sources file that knows the harness's writeKey; with `plan` (the path of a
    tracking plan), enforced in allow mode."""
    text = f'[[source]]\nid = "{SOURCE_ID}"\nwrite_keys = ["{WRITE_KEY}"]\n'
    if plan is not None:
        text += f'[source.tracking_plan]\npath = "{plan}"\nmode = "allow"\n'
    return text


_PROPERTY_KINDS: list[dict[str, Any]] = [
    {"type": "string"},
    {"type": "number", "minimum": 0},
    {"type": "integer", "minimum": 1},
    {"enum": ["USD", "EUR", "GBP"]},
    {"type": "string", "pattern": "^[0-9a-f]{16}$"},
    {"type": "boolean"},
    {"type": "array", "items": {"type": "string"}},
    {"type": "object", "properties": {"id": {"type": "string"}}},
    {"type": ["string", "null"]},
    {"type": "string", "format": "date-time"},
]


def _event_rule(name: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """A Segment event rule: the JSON Schema of the whole message."""
    return {
        "name": name,
        "description": "",
        "version": 1,
        "rules": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "context": {"type": "object", "properties": {}, "required": []},
                "traits": {"type": "object", "properties": {}, "required": []},
                "properties": {"type": "object", "properties": properties, "required": required},
            },
            "required": ["properties"],
        },
    }


def tracking_plan(events: int = 50, properties: int = 10) -> dict[str, Any]:
    """A realistic plan, as Segment exports it: `events` events of `properties` typed
    properties each (strings, numbers, enums, patterns, arrays, objects), one of them the
    harness's `Product Added` (whose message matches it), and a global rule."""
    added = {
        "product_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        "name": {"type": "string"},
        "price": {"type": "number", "minimum": 0},
        "quantity": {"type": "integer", "minimum": 1},
        "currency": {"enum": ["USD", "EUR", "GBP"]},
        "sku": {"type": "string"},
        "category": {"type": "string"},
        "brand": {"type": "string"},
        "variant": {"type": "string"},
        "coupon": {"type": ["string", "null"]},
    }
    rules = [_event_rule("Product Added", dict(list(added.items())[:properties]), ["product_id"])]
    for n in range(1, events):
        typed = {
            f"prop_{i}": _PROPERTY_KINDS[(n + i) % len(_PROPERTY_KINDS)] for i in range(properties)
        }
        rules.append(_event_rule(f"Event {n:02d}", typed, list(typed)[:3]))
    common = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"context": {"type": "object", "properties": {"locale": {"type": "string"}}}},
        "required": ["context"],
    }
    return {"name": "Bench", "rules": {"events": rules, "global": common}}


def stored_entry(message_id: str = "ajs-next-0b7f3c2e9d4a4f6b8e1c5a7d9f2b4c6e") -> bytes:
    """About what the gateway stores for one track message: the queue ceiling's entry."""
    message = track_message(message_id)
    message["receivedAt"] = "2026-11-23T09:41:07.501Z"
    message["originalTimestamp"] = message["timestamp"]
    message["context"]["ip"] = "203.0.113.7"
    return msgspec.json.encode(message)
