"""The dry run of a tracking plan: the violations messages would raise, storing nothing.

The admin API's `POST /v1/sources/{id}/tracking-plan/validate` and `gateway plan check`
both run this, and it runs what enforcement runs: the gateway's own validation, its
enrichment (as if the messages arrived now), then the plan's verdict. So the same
message gets the same violations from all three.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from gateway.errors import ApiError
from gateway.ingest.enrich import Arrival, enrich
from gateway.ingest.plan_enforce import Enforcer
from gateway.ingest.tracking_plan import Violation
from gateway.ingest.validate import message_type, validate

Outcome = Literal["stored", "blocked", "refused"]
"""stored (with its violations, if any), blocked by the plan, or refused by the gateway
itself before any plan (a 400: not a message)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """What the plan makes of one message."""

    index: int
    event: str
    """The counters' label: the event's name, `(unplanned)`, or the message type."""
    outcome: Outcome
    violations: list[Violation]

    def public(self) -> dict[str, Any]:
        """As the admin API answers it."""
        return {
            "index": self.index,
            "event": self.event,
            "outcome": self.outcome,
            "violations": [v.public() for v in self.violations],
        }


def dry_run(enforcer: Enforcer, messages: list[Any]) -> list[Finding]:
    """The finding of each of `messages` (decoded JSON values), in order."""
    arrival = Arrival(received_at=datetime.now(UTC))
    return [_one(enforcer, index, raw, arrival) for index, raw in enumerate(messages)]


def _one(enforcer: Enforcer, index: int, raw: Any, arrival: Arrival) -> Finding:
    path = f"$[{index}]"
    if not isinstance(raw, dict):
        why = Violation(path, "a message must be a JSON object", "invalid")
        return Finding(index, "", "refused", [why])
    message = copy.deepcopy(raw)
    try:
        kind = message_type(message, path)
        view = validate(message, kind, path)
    except ApiError as exc:
        return Finding(index, "", "refused", [Violation(path, exc.summary, "invalid")])
    enrich(message, view, kind, arrival)
    verdict = enforcer.judge(message, kind)
    outcome: Outcome = "blocked" if verdict.blocked else "stored"
    return Finding(index, verdict.event, outcome, verdict.violations)


def lines(findings: list[Finding], first: int = 1) -> list[str]:
    """One line per violation, for a person or a CI log: message number (from `first`),
    event, JSON path, what is wrong, and the keyword."""
    out = []
    for finding in findings:
        for violation in finding.violations:
            event = finding.event or "-"
            omitted = ", omitted" if violation.omitted else ""
            out.append(
                f"{finding.index + first}\t{event}\t{violation.path}\t"
                f"{violation.message} ({violation.kind}{omitted}; {finding.outcome})"
            )
    return out
