"""What a source's policies do to each message before it is stored (docs/policies.md).

`Enforcer.of(policies)` compiles a source's policies once, when the sources table is built;
a source with none has no enforcer, so the hot path pays one dict lookup for it. Each step
below touches only the paths it names: a path that is absent costs a failed `dict.get`.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from gateway.errors import Code, bad_request
from gateway.ingest.policy import Policies, check

_encode = msgspec.json.Encoder().encode

Step = Callable[[dict[str, Any]], None]
_BLOCK = 64
"""SHA-256's block size: an HMAC key is padded (or hashed) to it."""


def truncate_ip(value: str) -> str | None:
    """IPv4 to its /24 (`1.2.3.0`), IPv6 to its /48; None for what is not an address."""
    head, _, last = value.rpartition(".")
    if last.isdigit() and head.count(".") == 2 and head.replace(".", "").isdigit():  # IPv4
        return head + ".0"
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return truncate_ip(str(address.ipv4_mapped))
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def _ip_step(mode: str) -> Step:
    truncate = mode == "truncate"
    memo = ["", ""]  # the last address and its truncation: a batch's messages share one

    def change(holder: dict[str, Any]) -> None:
        value = holder["ip"]
        if truncate and isinstance(value, str):
            if value != memo[0]:
                kept = truncate_ip(value)
                if kept is None:  # not an address we could truncate: never kept whole
                    del holder["ip"]
                    return
                memo[0], memo[1] = value, kept
            holder["ip"] = memo[1]
        else:
            del holder["ip"]

    def apply(message: dict[str, Any]) -> None:
        context = message.get("context")
        if not isinstance(context, dict):
            return
        if "ip" in context:
            change(context)
        if "commandersAct" in context:  # it keeps a device `ip` it could not map
            vendor = context["commandersAct"]
            device = vendor.get("device") if isinstance(vendor, dict) else None
            if isinstance(device, dict) and "ip" in device:
                change(device)

    return apply


class Hasher:
    """HMAC-SHA-256 with one key, hex. The key's two padded blocks are hashed once, so a
    value costs two `copy` and `update`s (a fifth of `hmac.digest`'s cost with OpenSSL 3);
    the last text is remembered, as the same address often fills several fields and the
    messages of one user's batch."""

    __slots__ = ("_inner", "_last", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        self._last: tuple[object, str] = (None, "")
        """The last text hashed, and its digest."""

    def __call__(self, value: object) -> str:
        """The hex HMAC of a string's UTF-8, or of another value's JSON."""
        is_text = isinstance(value, str)
        if is_text and value == self._last[0]:
            return self._last[1]
        inner = self._inner.copy()
        inner.update(value.encode() if isinstance(value, str) else _encode(value))
        outer = self._outer.copy()
        outer.update(inner.digest())
        digest = outer.hexdigest()
        if is_text:  # text only: an object could change after it was remembered
            self._last = (value, digest)
        return digest


Tree = dict[str, "Tree | str"]
"""The field paths as nested keys, an action (`hash`, `drop`) at each leaf; `*`: every key."""


def field_tree(fields: Mapping[str, str]) -> Tree:
    """`fields` as a tree, walked once per message; a path under one that has an action is
    left out (`properties.card` dropped or hashed whole covers `properties.card.number`)."""
    tree: Tree = {}
    for path, action in sorted(fields.items(), key=lambda item: item[0].count(".")):
        node = tree
        *parents, leaf = path.split(".")
        for name in parents:
            child = node.setdefault(name, {})
            if isinstance(child, str):
                break
            node = child
        else:
            node[leaf] = action
    return tree


def _field_step(tree: Tree, hasher: Hasher) -> Step:
    """The step that changes `tree`'s fields, compiled into straight-line Python (as
    `dataclasses` writes its methods): each level looks up only the keys it names, and a `*`
    takes the keys no path of its level names, so each value is changed once. Nothing of the
    configuration reaches the code but keys written as literals (`repr`). A third of the cost
    of walking the tree, which mattered: it runs for every message of the source."""
    lines = ["def apply(message):"]
    names: dict[str, object] = {"hasher": hasher}
    _emit(tree, "message", 1, lines, names)
    exec("\n".join(lines), names)  # built above, from literals only
    step: Step = names["apply"]  # type: ignore[assignment]
    return step


def _emit(node: Tree, holder: str, depth: int, lines: list[str], names: dict[str, object]) -> None:
    """The lines that change `node`'s fields of the dict named `holder`."""
    pad = "    " * depth
    named = []
    for key, sub in node.items():
        if key == "*":
            continue
        if isinstance(sub, str):
            named.append(key)
            lines += [f"{pad}if {key!r} in {holder}:", _change(f"{holder}[{key!r}]", sub, pad)]
        else:
            child = f"level{depth}"
            lines += [f"{pad}{child} = {holder}.get({key!r})", f"{pad}if type({child}) is dict:"]
            _emit(sub, child, depth + 1, lines, names)
    every = node.get("*")
    if every is None:
        return
    if not isinstance(every, str):  # the sources file allows `*` only last
        raise ValueError("a `*` may only end a field path")
    skip = f"named{len(names)}"
    names[skip] = frozenset(named)
    lines += [
        f"{pad}for key in [key for key in {holder} if key not in {skip}]:",
        _change(f"{holder}[key]", every, pad),
    ]


def _change(field: str, action: str, pad: str) -> str:
    """The line, one level under `pad`, that drops or hashes `field`."""
    return f"{pad}    del {field}" if action == "drop" else f"{pad}    {field} = hasher({field})"


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

    __slots__ = ("origins", "policies", "redacts", "steps")

    def __init__(self, policies: Policies) -> None:
        check(policies)
        self.policies = policies
        self.origins = frozenset(policies.allowed_origins)
        self.redacts = bool(policies.fields) or policies.ip != "keep"
        """Whether the source's messages lose or hide data: a body it could not read as a
        message must not be stored as sent either (Commanders Act's rejected events)."""
        hasher = Hasher((policies.hash_secret or "").encode())
        steps: list[Step] = []
        if policies.fields:
            steps.append(_field_step(field_tree(policies.fields), hasher))
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
