"""A source's tracking plan: Segment's tracking-plan JSON, compiled once, checked per message.

The document is Segment's, so that a plan exported from Protocols loads as it is::

    {"name": "Web", "rules": {
        "events": [{"name": "Order Completed", "rules": <JSON Schema of the whole message>}],
        "identify": <schema>, "group": <schema>, "page": <schema>, "screen": <schema>,
        "global": <schema, for every message>}}

Each schema is compiled once (jsonschema-rs, chosen by measurement: docs/tracking-plans.md)
when the plan is loaded; a message costs a dictionary look-up and one `is_valid` call, and
only an invalid one is walked again for its errors. How a violation is acted on (allow,
omit, block) is `gateway.ingest.plan_enforce`'s.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jsonschema_rs
import msgspec

Mode = Literal["allow", "omit", "block"]
Unplanned = Literal["allow", "block"]
Kind = Literal["track", "identify", "group", "page", "screen", "alias"]

UNPLANNED = "(unplanned)"
"""The `event` label of a track event the plan has no rule for: its name is the client's,
so it never becomes a label."""
SECTIONS: dict[str, str] = {
    "track": "properties",
    "page": "properties",
    "screen": "properties",
    "identify": "traits",
    "group": "traits",
}
"""Where each type keeps what its rule plans (what `omit` may drop from)."""
MAX_VIOLATIONS = 20
"""Violations kept of one schema's check of a message: a bound on what one message adds to
its context and to the rejected stream (an array of a thousand wrong items breaks a
schema a thousand times)."""
_ALIASES = {"identify_traits": "identify", "group_traits": "group"}
"""Older Segment exports name the identify and group rules so."""
_DRAFTS = {
    "http://json-schema.org/draft-07/schema": jsonschema_rs.Draft7Validator,
    "https://json-schema.org/draft/2020-12/schema": jsonschema_rs.Draft202012Validator,
    "https://json-schema.org/draft/2019-09/schema": jsonschema_rs.Draft201909Validator,
}


class PlanSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """`[source.tracking_plan]`: the plan and what to do with what breaks it."""

    path: str | None = None
    """The plan's JSON file, relative to the sources file."""
    mode: Mode = "allow"
    """allow: store with `context.violations`; omit: drop what the plan does not know or
    what breaks it; block: store nothing (the rejected stream has it)."""
    unplanned: Unplanned = "allow"
    """A track event whose name has no rule: allow, or block."""
    modes: dict[Kind, Mode] = {}
    """The mode of one message type (`track`, `identify`, ...) when it is not `mode`."""
    plan: dict[str, Any] | None = None
    """The document (read from `path`, or given to the admin API)."""


class PlanError(ValueError):
    """A plan that cannot be used; the message names the JSON path of what is wrong."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a message breaks its plan."""

    path: str
    """The JSON path in the message: `$.properties.price`."""
    message: str
    kind: str
    """The JSON Schema keyword that failed (`type`, `required`, `enum`, `pattern`, ...), or
    `unplanned_event`, or `unplanned_property` (dropped by omit)."""
    omitted: bool = False
    """The property was dropped (omit mode)."""
    parts: tuple[str | int, ...] = ()
    """`path` as its keys and indexes."""

    def public(self) -> dict[str, Any]:
        """As `context.violations`, the rejected stream and the dry run show it."""
        shown: dict[str, Any] = {"path": self.path, "message": self.message, "kind": self.kind}
        if self.omitted:
            shown["omitted"] = True
        return shown


Known = dict[str, "Known | None"]
"""The properties a schema names, nested; None below a name: anything."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled schema: a track event's, a message type's or the global one."""

    label: str
    """The `event` label of its counters: the event's name, or the message type."""
    validator: jsonschema_rs.Validator
    known: Known | None
    """What its schema names in the type's section (`properties` or `traits`)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A compiled tracking plan."""

    name: str
    events: dict[str, Rule]
    types: dict[str, Rule]
    """identify, group, page, screen."""
    common: Rule | None
    """`global`: every message."""

    def rule(self, message: dict[str, Any], kind: str) -> Rule | None:
        """The rule for `message`; None for an unplanned track event or an unplanned type."""
        if kind == "track":
            return self.events.get(message.get("event"))  # type: ignore[arg-type]
        return self.types.get(kind)

    def violations(self, message: dict[str, Any], rule: Rule | None) -> list[Violation]:
        """What `message` breaks in `rule` and the global schema: [] when it is valid."""
        found: list[Violation] = []
        for applied in (rule, self.common):
            if applied is not None and not applied.validator.is_valid(message):
                errors = itertools.islice(applied.validator.iter_errors(message), MAX_VIOLATIONS)
                found += (_violation(e) for e in errors)
        return found


def _violation(error: jsonschema_rs.ValidationError) -> Violation:
    keyword = next((p for p in reversed(error.schema_path) if isinstance(p, str)), "schema")
    parts = tuple(error.instance_path)
    return Violation(json_path(parts), error.message, keyword, parts=parts)


def json_path(parts: Iterable[str | int]) -> str:
    """`["properties", "items", 0]` as `$.properties.items[0]` (msgspec's notation)."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


class _Event(msgspec.Struct):
    name: str
    rules: dict[str, Any] = {}
    version: int = 1


class _Rules(msgspec.Struct, rename={"common": "global"}):
    events: list[_Event] = []
    identify: dict[str, Any] | None = None
    group: dict[str, Any] | None = None
    page: dict[str, Any] | None = None
    screen: dict[str, Any] | None = None
    common: dict[str, Any] | None = None


class _Document(msgspec.Struct):
    """Segment's export; what else it carries (`create_time`, ...) is ignored."""

    rules: _Rules
    name: str = ""
    display_name: str = ""


def compile_plan(document: dict[str, Any]) -> Plan:
    """The compiled `document`; `PlanError` naming the path of what does not compile.

    Compiled once per distinct document: a table rebuilt for a key's change reuses it.
    """
    return _compiled(msgspec.json.encode(document, order="sorted"))


@functools.lru_cache(maxsize=64)
def _compiled(blob: bytes) -> Plan:
    raw = _from_rule_list(msgspec.json.decode(blob))
    rules = raw.get("rules") if isinstance(raw, dict) else None
    if isinstance(rules, dict):
        for old, new in _ALIASES.items():
            if old in rules and new not in rules:
                rules[new] = rules.pop(old)
    try:
        document = msgspec.convert(raw, _Document)
    except msgspec.ValidationError as exc:
        raise PlanError(f"not a tracking plan: {exc}") from None
    events: dict[str, tuple[int, Rule]] = {}
    for index, event in enumerate(document.rules.events):
        where = f"$.rules.events[{index}].rules"
        rule = _rule(event.name, event.rules, where, "track")
        if event.name not in events or events[event.name][0] < event.version:
            events[event.name] = (event.version, rule)  # the newest version of an event
    types = {
        kind: _rule(kind, schema, f"$.rules.{kind}", kind)
        for kind in ("identify", "group", "page", "screen")
        if (schema := getattr(document.rules, kind)) is not None
    }
    common = document.rules.common
    return Plan(
        name=document.display_name or document.name,
        events={name: rule for name, (_, rule) in events.items()},
        types=types,
        common=None if common is None else _rule("global", common, "$.rules.global", ""),
    )


def _from_rule_list(raw: Any) -> Any:
    """Segment's Public API lists a plan's rules (`{"data": {"rules": [{"type": "TRACK",
    "key": ..., "jsonSchema": ..., "version": ...}, ...]}}`): the same plan, another shape."""
    if isinstance(raw, dict) and isinstance(raw.get("data"), dict):
        raw = raw["data"]
    listed = raw.get("rules") if isinstance(raw, dict) else None
    if not isinstance(listed, list):
        return raw
    rules: dict[str, Any] = {"events": []}
    for item in listed:
        if not isinstance(item, dict):
            continue
        kind = str(item.get("type", "")).lower()
        schema = item.get("jsonSchema") or {}
        if kind == "track":
            version = item.get("version", 1)
            rules["events"].append({"name": item.get("key"), "rules": schema, "version": version})
        elif kind in ("identify", "group", "page", "screen"):
            rules[kind] = schema
        elif kind == "common":
            rules["global"] = schema
    return {**raw, "rules": rules}


def _rule(label: str, schema: dict[str, Any], where: str, kind: str) -> Rule:
    draft = _DRAFTS.get(str(schema.get("$schema", "")).rstrip("#"), jsonschema_rs.Draft7Validator)
    try:
        validator = draft(schema, validate_formats=True)
    except ValueError as exc:  # jsonschema_rs.ValidationError: the schema's own error
        message = getattr(exc, "message", str(exc))
        inner = json_path(list(getattr(exc, "instance_path", [])))[1:]
        raise PlanError(f"{where}{inner}: {message}") from None
    section = SECTIONS.get(kind)
    known = _known(schema.get("properties", {}).get(section)) if section else None
    return Rule(label, validator, known)


def _known(schema: object) -> Known | None:
    """The names an object schema lists, nested; None when it lists none (nothing to omit
    by) or allows others by pattern."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return None
    if schema.get("patternProperties"):
        return None
    return {name: _known(sub) for name, sub in schema["properties"].items()}


def read_plan(path: Path) -> dict[str, Any]:
    """The JSON document at `path`, compiled once to check it; `PlanError` when it cannot
    be read or compiled."""
    try:
        document = msgspec.json.decode(path.read_bytes())
    except OSError as exc:
        raise PlanError(f"cannot read tracking plan {path}: {exc.strerror}") from None
    except msgspec.DecodeError as exc:
        raise PlanError(f"tracking plan {path} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PlanError(f"tracking plan {path}: $: expected an object")
    try:
        compile_plan(document)
    except PlanError as exc:
        raise PlanError(f"tracking plan {path}: {exc}") from None
    return document


def digest(document: dict[str, Any]) -> str:
    """A short fingerprint of a plan, to tell versions apart in the admin API."""
    return hashlib.sha256(msgspec.json.encode(document, order="sorted")).hexdigest()[:12]
