"""`gateway plan check PLAN.json MESSAGES.ndjson`: a tracking plan's dry run, offline, for CI.

One line per violation (message number, event, JSON path, what is wrong); exit 1 when
there is any, 0 when there is none, 2 when the plan or the messages cannot be read. The
same check as the gateway's enforcement and the admin API's dry run
(`gateway.ingest.plan_check`).
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path
from typing import Any

import msgspec

from gateway.ingest.plan_check import dry_run, lines
from gateway.ingest.plan_enforce import Enforcer
from gateway.ingest.tracking_plan import (
    Mode,
    PlanError,
    PlanSettings,
    Unplanned,
    compile_plan,
    read_plan,
)


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`gateway plan check`."""
    plan = commands.add_parser(
        "plan",
        help="check messages against a tracking plan, offline",
        description="Tracking plans (docs/tracking-plans.md).",
    )
    actions = plan.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="the violations a plan raises for messages (exit 1 when any)",
        description="Print one line per violation: message number (the line of the file), "
        "event, JSON path, what is wrong (the keyword; and what enforcement would do). Exit "
        "1 when there is any, 0 when none.",
    )
    check.add_argument("plan", type=Path, help="the plan: Segment's tracking-plan JSON")
    check.add_argument("messages", type=Path, help="one message a line (JSON); - for stdin")
    check.add_argument("--mode", choices=typing.get_args(Mode), default="allow")
    check.add_argument("--unplanned", choices=typing.get_args(Unplanned), default="allow")
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    try:
        document = read_plan(args.plan)
        messages = _read_messages(args.messages)
    except (PlanError, ValueError, OSError) as exc:
        print(f"gateway plan check: {exc}", file=sys.stderr)
        return 2
    settings = PlanSettings(mode=args.mode, unplanned=args.unplanned, plan=document)
    enforcer = Enforcer("check", compile_plan(document), settings)
    numbers = [n for n, _ in messages]
    findings = dry_run(enforcer, [m for _, m in messages])
    found = 0
    for finding in findings:
        for line in lines([finding], first=numbers[finding.index] - finding.index):
            print(line)
            found += 1
    print(f"{len(findings)} messages, {found} violations", file=sys.stderr)
    return 1 if found else 0


def _read_messages(path: Path) -> list[tuple[int, Any]]:
    """(line number, decoded message) for each non-blank line."""
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                out.append((number, msgspec.json.decode(line)))
            except msgspec.DecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
    return out
