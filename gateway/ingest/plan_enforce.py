"""Enforcing a source's tracking plan on each message: allow, omit or block.

- allow: the message is stored with `context.violations` (each violation's JSON path,
  message and kind).
- omit: what the plan does not know, and the properties that break it, are dropped; the
  message is stored with `context.violations` saying what was dropped and what else is wrong.
- block: the message is not stored; the client is answered as for any accepted message (it
  must not retry), and the message goes to the rejected stream with its violations.

A track event the plan has no rule for is unplanned: `unplanned` allows or blocks it.
Everything here is in memory: no Redis round trip, and a valid message costs a look-up and
one compiled check (docs/tracking-plans.md has the figures).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.ingest.tracking_plan import (
    SECTIONS,
    UNPLANNED,
    Known,
    Mode,
    Plan,
    PlanSettings,
    Rule,
    Violation,
    compile_plan,
)
from gateway.store import rejected
from gateway.store.entry import Entry

_encode = msgspec.json.Encoder().encode

BLOCKED = "blocked by the tracking plan"
"""The rejected stream's `reason` of a blocked message."""


class PlanCounts:
    """What enforcement counted since the last push (`gateway.ingest.plan_upkeep`): plain
    dicts, cheap to add to, as `gateway.ops.tally.Tally`."""

    def __init__(self) -> None:
        self.violations: dict[tuple[str, str, str], int] = {}
        """(source, event, kind) -> violations."""
        self.blocked: dict[tuple[str, str], int] = {}
        """(source, event) -> messages blocked."""
        self.blocked_total = 0
        """Messages blocked since the start (this process)."""
        self.latest = ""
        """The last blocked message, for the log: source, event, first violation's path."""

    def count(self, source: str, event: str, violations: list[Violation]) -> None:
        """Count each violation of a message, by kind."""
        for violation in violations:
            key = (source, event, violation.kind)
            self.violations[key] = self.violations.get(key, 0) + 1

    def block(self, source: str, event: str, first: Violation) -> None:
        """Count a blocked message."""
        self.blocked[(source, event)] = self.blocked.get((source, event), 0) + 1
        self.blocked_total += 1
        # The path and keyword, not the message: it quotes the client's value (an email...).
        self.latest = f"source {source}, {event}: {first.path} ({first.kind})"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a plan made of one message."""

    event: str
    """Its counters' `event` label."""
    violations: list[Violation]
    blocked: bool


class Enforcer:
    """One source's compiled plan and its settings."""

    __slots__ = ("modes", "plan", "settings", "source")

    def __init__(self, source: str, plan: Plan, settings: PlanSettings) -> None:
        self.source = source
        self.plan = plan
        self.settings = settings
        self.modes: dict[str, Mode] = {str(k): m for k, m in settings.modes.items()}
        """Each message type's mode, where it is not `settings.mode`."""

    def enforce(self, message: dict[str, Any], kind: str, counts: PlanCounts) -> Entry | None:
        """Apply the plan to an enriched `message` in place; the rejected stream's entry when
        it is blocked (store that instead), else None (store the message)."""
        plan = self.plan
        rule = plan.rule(message, kind)
        if (
            (rule is not None or kind != "track")  # not unplanned
            and (rule is None or rule.validator.is_valid(message))
            and (plan.common is None or plan.common.validator.is_valid(message))
            and self.modes.get(kind, self.settings.mode) != "omit"
        ):
            return None  # the common case, valid: no verdict to build
        verdict = self.judge(message, kind)
        if not verdict.violations:
            return None
        counts.count(self.source, verdict.event, verdict.violations)
        if not verdict.blocked:
            return None
        counts.block(self.source, verdict.event, verdict.violations[0])
        body = _encode(message)
        return rejected.entry(
            BLOCKED,
            source=self.source,
            dialect="tracking-plan",
            body=body,
            received_at=message.get("receivedAt", ""),
            route="",
            site_id=None,
            index=None,
            max_body=len(body),  # within the message limit already
            violations=[v.public() for v in verdict.violations],
        )

    def judge(self, message: dict[str, Any], kind: str) -> Verdict:
        """The violations of `message` and whether it is blocked; in allow and omit modes
        the message is changed in place (omitted properties, `context.violations`)."""
        rule = self.plan.rule(message, kind)
        found = self.plan.violations(message, rule)
        unplanned = kind == "track" and rule is None
        if unplanned:
            name = message.get("event")
            why = f"{name!r} is not in the tracking plan"
            found.insert(0, Violation("$.event", why, _UE, parts=("event",)))
        label = rule.label if rule is not None else UNPLANNED if unplanned else kind
        mode = self.modes.get(kind, self.settings.mode)
        if mode == "omit" and rule is not None:
            found = _omit(message, SECTIONS.get(kind), rule, found)
        blocked = (unplanned and self.settings.unplanned == "block") or (
            mode == "block" and any(v.kind != _UE for v in found)
        )
        if found and not blocked:
            context = message.get("context")
            if not isinstance(context, dict):
                context = message["context"] = {}
            context["violations"] = [v.public() for v in found]
        return Verdict(label, found, blocked)


_UE = "unplanned_event"


def _omit(
    message: dict[str, Any], section: str | None, rule: Rule, found: list[Violation]
) -> list[Violation]:
    """Drop the section's properties that break the plan, then those it does not know."""
    values = message.get(section) if section else None
    if not isinstance(values, dict):
        return found
    out = [_drop(values, section, v) for v in found]
    if rule.known is not None:
        _drop_unknown(values, rule.known, f"$.{section}", out)
    return out


def _drop(values: dict[str, Any], section: str | None, violation: Violation) -> Violation:
    """`violation` marked omitted when the property it is about is dropped: the innermost
    named property under the section on its path (a missing `required` one cannot be)."""
    parts = violation.parts
    if not parts or parts[0] != section or len(parts) < 2:
        return violation
    names = [i for i, p in enumerate(parts) if isinstance(p, str) and i > 0]
    if not names:
        return violation
    last = names[-1]
    holder: Any = values
    for part in parts[1:last]:
        try:
            holder = holder[part]
        except (KeyError, IndexError, TypeError):
            return violation  # an ancestor was dropped already
    if isinstance(holder, dict):
        holder.pop(parts[last], None)
        return dataclasses.replace(violation, omitted=True)
    return violation


def _drop_unknown(values: dict[str, Any], known: Known, path: str, out: list[Violation]) -> None:
    for name in [n for n in values if n not in known]:
        del values[name]
        out.append(
            Violation(
                f"{path}.{name}",
                f"{name!r} is not in the tracking plan",
                "unplanned_property",
                omitted=True,
            )
        )
    for name, inner in known.items():
        value = values.get(name)
        if inner is not None and isinstance(value, dict):
            _drop_unknown(value, inner, f"{path}.{name}", out)


def enforcers(planned: Iterable[tuple[str, PlanSettings]]) -> dict[str, Enforcer]:
    """The enforcers of the sources that have a plan, by source id; `PlanError` when a
    plan does not compile (each distinct plan is compiled once: `compile_plan`)."""
    return {
        source: Enforcer(source, compile_plan(settings.plan), settings)
        for source, settings in planned
        if settings.plan is not None
    }
