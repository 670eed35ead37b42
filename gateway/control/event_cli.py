"""`gateway event MESSAGE_ID`: where a message is and what became of it, through the admin
API's `GET /v1/events/{messageId}`. A summary and a table of the consumer groups for
people; `--json` prints the API's answer as is."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from typing import Any

from gateway.control.cli import AdminClient, Refused, call
from gateway.ops import flags

MESSAGE_SHOWN = 300
"""Characters of the stored message shown in the summary (`--json` has all of it)."""


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`gateway event ...`."""
    text = "where a message is, and what each consumer group did with it"
    parser = commands.add_parser(
        "event",
        help=text,
        description=f"{text.capitalize()}, or why it was refused, through a running "
        "gateway's admin API (docs/admin.md).",
    )
    parser.add_argument("message_id", metavar="MESSAGE_ID")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")
    flags.add_flags(parser, AdminClient)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    client = flags.from_args(AdminClient, args)
    path = "/v1/events/" + urllib.parse.quote(args.message_id, safe="")
    try:
        answer = call(client, "GET", path)
    except Refused as exc:
        print(f"gateway event: {exc}", file=sys.stderr)
        return exc.code
    print(json.dumps(answer, indent=2) if args.json else summary(answer))
    return 0


def summary(answer: dict[str, Any]) -> str:
    """The answer for people."""
    if "refused" in answer:
        source = f", source {answer['source']}" if answer.get("source") else ""
        return (
            f"{answer['messageId']}: refused at {answer['at']} on {answer['route']}{source}\n"
            f"reason: {answer['refused']}"
        )
    route = answer.get("route") or "an unknown route"
    lines = [
        f"{answer['messageId']}: accepted at {answer.get('receivedAt') or '?'} on {route}, "
        f"source {answer['source']}",
        f"stored in {answer['stream']} as {answer['entryId']}",
    ]
    message = answer.get("message")
    if message is None:
        lines.append("message: trimmed from the stream")
    else:
        text = json.dumps(message, separators=(",", ":"))
        cut = text[:MESSAGE_SHOWN] + ("…" if len(text) > MESSAGE_SHOWN else "")
        lines.append(f"message: {cut}")
    rows = [["GROUP", "STATUS", "ATTEMPTS", "ERROR"]]
    for name, group in sorted(answer["groups"].items()):
        attempts, error = _text(group.get("attempts")), _text(group.get("error"))
        rows.append([name, group["status"], attempts, error])
    if len(rows) == 1:
        lines.append("no consumer group reads this stream")
        return "\n".join(lines)
    widths = [max(len(row[n]) for row in rows) for n in range(3)]
    lines += [
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[3]]).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def _text(value: object) -> str:
    return "-" if value is None else str(value)
