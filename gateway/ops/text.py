"""Text from Redis: its answers are bytes unless a client decodes them."""

from __future__ import annotations


def as_text(value: object) -> str:
    """`value` as text: bytes decoded as UTF-8, anything else through `str`."""
    return value.decode() if isinstance(value, bytes) else str(value)
