"""What a source's policies do to each message before it is stored (docs/policies.md).

`Enforcer.of(policies)` compiles a source's policies once, when the sources table is built;
a source with none has no enforcer, so the hot path pays one dict lookup for it. Each step
below touches only the paths it names: a path that is absent costs a failed `dict.get`.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from typing import Any

import msgspec

from gateway.errors import Code, bad_request
from gateway.ingest.policy import Policies, check

_encode = msgspec.json.Encoder().encode

Step = Callable[[dict[str, Any]], None]


def truncate_ip(value: str) -> str | None:
    """IPv4 to its /24 (`1.2.3.0`), IPv6 to its /48; None for what is not an address."""
    parts = value.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 for p in parts):
        return f"{parts[0]}.{parts[1]}.{parts[2]}.0"
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return truncate_ip(str(address.ipv4_mapped))
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def _ip_step(mode: str) -> Step:
    def apply(message: dict[str, Any]) -> None:
        context = message.get("context")
        if not isinstance(context, dict):
            return
        _set_ip(context, mode)
        # Commanders Act keeps a device `ip` it could not map (not a non-empty string).
        vendor = context.get("commandersAct")
        if isinstance(vendor, dict) and isinstance(vendor.get("device"), dict):
            _set_ip(vendor["device"], mode)

    return apply


def _set_ip(holder: dict[str, Any], mode: str) -> None:
    value = holder.get("ip")
    if value is None:
        return
    kept = truncate_ip(value) if mode == "truncate" and isinstance(value, str) else None
    if kept is None:  # dropped, or not an address we could truncate: never kept whole
        del holder["ip"]
    else:
        holder["ip"] = kept


def _field_step(path: str, action: str, secret: bytes) -> Step:
    *parents, leaf = path.split(".")

    def change(holder: dict[str, Any], key: str) -> None:
        if action == "drop":
            del holder[key]
        else:
            value = holder[key]
            raw = value.encode() if isinstance(value, str) else _encode(value)
            holder[key] = hmac.digest(secret, raw, "sha256").hex()

    def apply(message: dict[str, Any]) -> None:
        holder: Any = message
        for name in parents:
            holder = holder.get(name)
            if not isinstance(holder, dict):
                return
        if leaf == "*":
            for key in list(holder):
                change(holder, key)
        elif leaf in holder:
            change(holder, leaf)

    return apply


def _withhold_step(message: dict[str, Any]) -> None:
    # The worker cannot see the source's policy: "no consent given" travels in the message,
    # as an empty preference set, which no consent-requiring destination accepts.
    context = message.get("context")
    if not isinstance(context, dict):
        message["context"] = {"consent": {"categoryPreferences": {}}}
        return
    consent = context.get("consent")
    if not isinstance(consent, dict):
        context["consent"] = {"categoryPreferences": {}}
    elif not isinstance(consent.get("categoryPreferences"), dict):
        context["consent"] = {**consent, "categoryPreferences": {}}


class Enforcer:
    """A source's policies, compiled: `apply` to each message, `admit` each browser."""

    __slots__ = ("origins", "policies", "steps")

    def __init__(self, policies: Policies) -> None:
        check(policies)
        self.policies = policies
        self.origins = frozenset(policies.allowed_origins)
        secret = (policies.hash_secret or "").encode()
        steps: list[Step] = [_field_step(p, a, secret) for p, a in policies.fields.items()]
        if policies.ip != "keep":
            steps.append(_ip_step(policies.ip))
        if policies.no_consent == "withhold":
            steps.append(_withhold_step)
        self.steps = tuple(steps)

    @classmethod
    def of(cls, policies: Policies) -> Enforcer | None:
        """The enforcer of `policies`; None when no policy touches messages or requests
        (a rate limit alone is the HTTP layer's)."""
        if policies.ip == "keep" and not (
            policies.fields or policies.allowed_origins or policies.no_consent == "withhold"
        ):
            check(policies)
            return None
        return cls(policies)

    def apply(self, message: dict[str, Any]) -> None:
        """Change `message` in place as the policies say."""
        for step in self.steps:
            step(message)

    def admit(self, origin: str | None) -> None:
        """The contract's 400 for a browser (`Origin`) not on the allowed list."""
        if origin is not None and self.origins and origin not in self.origins:
            raise bad_request(
                "Origin not allowed", f"{origin} may not send to this source", code=Code.AUTH
            )
