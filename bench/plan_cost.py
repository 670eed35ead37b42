"""What a tracking plan costs per message: the figures in docs/tracking-plans.md.

    python -m bench.plan_cost

With the harness's plan (`bench.payloads.tracking_plan`: 50 events of 10 properties) and its
analytics.js `Product Added`: the plan's verdict alone (a valid planned track, one with a
violation, an unplanned one, omit mode), and the whole of `Ingest.message` (validate,
enrich, plan, encode) with and without the plan. Then the validators that were candidates
on the same schema and message: jsonschema-rs (chosen), fastjsonschema and jsonschema, when
they are installed. Best of many short runs (`bench.metrics_cost`'s).
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench import payloads
from bench.metrics_cost import _best  # best of many interleaved runs, ns per call
from gateway.ingest.enrich import Arrival
from gateway.ingest.pipeline import Ingest
from gateway.ingest.plan_enforce import Enforcer, PlanCounts
from gateway.ingest.sources import Source, Sources
from gateway.ingest.tracking_plan import PlanSettings, compile_plan
from gateway.settings import Settings


def _ingest(plan: dict[str, Any] | None) -> tuple[Ingest, Source]:
    settings = None if plan is None else PlanSettings(plan=plan)
    source = Source(id=payloads.SOURCE_ID, write_keys=[payloads.WRITE_KEY], tracking_plan=settings)
    return Ingest(Settings.load(environ={}), Sources([source])), source


def _candidates(schema: dict[str, Any], message: dict[str, Any]) -> dict[str, Callable[[], object]]:
    """The validators measured before choosing, on one event's schema."""
    found: dict[str, Callable[[], object]] = {}
    if importlib.util.find_spec("jsonschema_rs"):
        import jsonschema_rs

        rs = jsonschema_rs.Draft7Validator(schema)
        found["jsonschema-rs is_valid"] = lambda: rs.is_valid(message)
    if importlib.util.find_spec("fastjsonschema"):
        import fastjsonschema

        generated = fastjsonschema.compile(schema)
        found["fastjsonschema (generated code)"] = lambda: generated(message)
    if importlib.util.find_spec("jsonschema"):
        import jsonschema

        py = jsonschema.Draft7Validator(schema)
        found["jsonschema is_valid"] = lambda: py.is_valid(message)
    return found


def main() -> None:
    """Print each case's cost per message."""
    plan = payloads.tracking_plan()
    arrival = Arrival(received_at=datetime.now(UTC), ip="203.0.113.7", browser=True)
    message = payloads.track_message("ajs-next-0b7f3c2e9d4a4f6b8e1c5a7d9f2b4c6e")
    with_plan, source = _ingest(plan)
    without, bare = _ingest(None)
    counts = PlanCounts()

    def enforcer(mode: str) -> Enforcer:
        return Enforcer("bench", compile_plan(plan), PlanSettings(mode=mode, plan=plan))  # type: ignore[arg-type]

    allow, omit = enforcer("allow"), enforcer("omit")
    enriched = copy.deepcopy(message)
    enriched |= {"receivedAt": arrival.received_iso, "originalTimestamp": message["timestamp"]}
    wrong = copy.deepcopy(enriched)
    wrong["properties"]["price"] = "18.99"
    unplanned = copy.deepcopy(enriched)
    unplanned["event"] = "Product Compared"

    def judged(which: Enforcer, sample: dict[str, Any]) -> Callable[[], object]:
        return lambda: which.enforce(copy.copy(sample), "track", counts)

    cases: dict[str, Callable[[], object]] = {
        "plan: planned track, valid (allow)": judged(allow, enriched),
        "plan: planned track, valid (omit)": judged(omit, enriched),
        "plan: a wrong type, violations added": lambda: allow.enforce(
            copy.deepcopy(wrong), "track", counts
        ),
        "plan: unplanned track (allow)": lambda: allow.enforce(
            copy.deepcopy(unplanned), "track", counts
        ),
        "copy.deepcopy of the message (subtract)": lambda: copy.deepcopy(wrong),
        "Ingest.message, no plan": lambda: without.message(
            dict(message), "track", arrival, bare, "$"
        ),
        "Ingest.message, with the plan": lambda: with_plan.message(
            dict(message), "track", arrival, source, "$"
        ),
    }
    rule = plan["rules"]["events"][0]["rules"]
    cases |= _candidates(rule, enriched)
    for name, ns in _best(cases).items():
        print(f"{name:42} {ns / 1000:7.3f} µs")


if __name__ == "__main__":
    main()
