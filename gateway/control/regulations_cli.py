"""`gateway regulations create|list|get|download`: the admin API's regulations from a shell.
A line or table for people; `--json` prints the API's answer as is."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from gateway.control.cli import AdminClient, Refused, call
from gateway.ops import flags
from gateway.store.regulation_records import STATUSES, TYPES


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`gateway regulations ...`."""
    parser = commands.add_parser(
        "regulations",
        help="suppress, delete, stop tracking or access a user's data (admin API)",
        description="Regulations through a running gateway's admin API (docs/regulations.md).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=text, description=text)
        sub.add_argument("--json", action="store_true", help="print the API's JSON answer")
        flags.add_flags(sub, AdminClient)
        sub.set_defaults(handler=_run, verb=name)
        return sub

    create = action("create", "make a regulation of up to 5,000 ids")
    create.add_argument("type", choices=TYPES, metavar="TYPE", help=", ".join(TYPES))
    create.add_argument("ids", nargs="+", metavar="ID", help="the subjects' ids")
    create.add_argument(
        "--anonymous", action="store_true", help="the ids are anonymousIds (default: userIds)"
    )
    create.add_argument("--source", help="only this source's messages (default: every source)")
    listing = action("list", "regulations, newest first")
    listing.add_argument("--status", choices=STATUSES, help="only those with this status")
    listing.add_argument("--count", type=int, default=20, help="at most this many (max 100)")
    listing.add_argument("--cursor", help="where the previous page said `next`")
    action("get", "one regulation and each store's status").add_argument("id")
    fetch = action("download", "an ACCESS regulation's zip, once FINISHED")
    fetch.add_argument("id")
    fetch.add_argument(
        "-o", "--output", type=Path, help="write the zip here (default: <id>.zip)", metavar="FILE"
    )


def _run(args: argparse.Namespace) -> int:
    client = flags.from_args(AdminClient, args)
    try:
        if args.verb == "download":
            data = call(client, "GET", f"/v1/regulations/{args.id}/download", raw=True)
            target = args.output or Path(f"{args.id}.zip")
            target.write_bytes(data)
            print(f"{target} ({len(data)} bytes)")
            return 0
        method, path, body = _request(args)
        answer = call(client, method, path, body)
    except Refused as exc:
        print(f"gateway regulations: {exc}", file=sys.stderr)
        return exc.code
    if args.json:
        print(json.dumps(answer, indent=2))
    elif args.verb == "create":
        print(answer["data"]["regulateId"])
    elif args.verb == "get":
        print(_describe(answer["data"]["regulation"]))
    else:
        print(_table(answer["data"]))
    return 0


def _request(args: argparse.Namespace) -> tuple[str, str, Any]:
    if args.verb == "create":
        body = {
            "regulationType": args.type,
            "subjectType": "ANONYMOUS_ID" if args.anonymous else "USER_ID",
            "subjectIds": args.ids,
        }
        if args.source is not None:
            body["sourceId"] = args.source
        return "POST", "/v1/regulations", body
    if args.verb == "get":
        return "GET", f"/v1/regulations/{args.id}", None
    query = {
        "pagination.count": args.count,
        "status": args.status,
        "pagination.cursor": args.cursor,
    }
    return "GET", "/v1/regulations?" + urlencode({k: v for k, v in query.items() if v}), None


def _describe(regulation: dict[str, Any]) -> str:
    ids = ", ".join(regulation["subjectIds"][:5]) + (
        "..." if len(regulation["subjectIds"]) > 5 else ""
    )
    lines = [
        f"{regulation['id']}  {regulation['regulationType']}  {regulation['overallStatus']}",
        f"  {regulation['subjectType']}: {ids}"
        + (f"  (source {regulation['sourceId']})" if regulation["sourceId"] else ""),
    ]
    for store in regulation["stores"]:
        detail = f"  {store['detail']}" if store["detail"] else ""
        lines.append(f"  {store['name']}: {store['status']} ({store['count']} messages){detail}")
    if regulation.get("download"):
        lines.append(f"  download: gateway regulations download {regulation['id']}")
    return "\n".join(lines)


def _table(data: dict[str, Any]) -> str:
    rows = [["ID", "TYPE", "STATUS", "SUBJECTS", "CREATED"]]
    for r in data["regulations"]:
        rows.append(
            [
                r["id"],
                r["regulationType"],
                r["overallStatus"],
                str(len(r["subjectIds"])),
                r["createdAt"],
            ]
        )
    widths = [max(len(row[n]) for row in rows) for n in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    following = data["pagination"]["next"]
    if following is not None:
        lines.append(f"(more: --cursor {following})")
    return "\n".join(lines)
