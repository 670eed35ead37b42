"""Which destinations a message reaches, by its `integrations` object.

As Segment and MetaRouter define it: `All` (default true) sets the default for every
destination, and a key naming a destination overrides it. A key is on when its value is
`true` or an object (destination-specific options), off when `false`. So `{"All": false,
"Mixpanel": true}` reaches only `Mixpanel`, and no object at all reaches every destination.
Destination names match exactly, or else ignoring case.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def reaches(message: Mapping[str, Any], destination: str) -> bool:
    """Whether `message` is meant for the destination called `destination`."""
    integrations = message.get("integrations")
    if not isinstance(integrations, Mapping):
        return True
    default = _switch(integrations.get("All"))
    value = _lookup(integrations, destination)
    explicit = _switch(value)
    if explicit is not None:
        return explicit
    return True if default is None else default


def _lookup(integrations: Mapping[str, Any], name: str) -> Any:
    if name in integrations:
        return integrations[name]
    folded = name.casefold()
    for key, value in integrations.items():
        if isinstance(key, str) and key.casefold() == folded and key != "All":
            return value
    return None


def _switch(value: Any) -> bool | None:
    # true / false switch; an object carries options and means on; anything else is unset.
    if isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        return True
    return None
