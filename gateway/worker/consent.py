"""Consent: which destinations may have a message, by the categories its user granted.

A destination may require consent categories (`consent = ["advertising"]` in its
`[[destination]]` table). As Segment enforces them: a message whose
`context.consent.categoryPreferences` does not say `true` for every category its destination
requires is not sent there (a `false` or a missing category both withhold it). A message
with no preferences at all goes to every destination, as Segment's "events without the
consent object continue to flow"; a source with `no_consent = "withhold"` has the gateway
give such messages an empty preference set instead (docs/policies.md). Commanders Act's
`consent_categories` arrive as the same preferences (`gateway.dialects.commanders_act`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def denied(message: Mapping[str, Any], required: Sequence[str]) -> str | None:
    """The first of `required` that `message` does not grant; None when it may be sent."""
    if not required:
        return None
    context = message.get("context")
    consent = context.get("consent") if isinstance(context, Mapping) else None
    granted = consent.get("categoryPreferences") if isinstance(consent, Mapping) else None
    if not isinstance(granted, Mapping):
        return None
    for category in required:
        if granted.get(category) is not True:
            return category
    return None


def categories(value: object) -> tuple[str, ...]:
    """A destination's `consent` option, checked: a list of category names."""
    if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
        raise ValueError(f"consent must be a list of category names, not {value!r}")
    return tuple(value)
