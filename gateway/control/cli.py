"""`gateway sources list|create|disable|enable|add-key|rotate-key|revoke-key`: the admin API's
sources calls from a shell. A table for people; `--json` prints the API's answer as is."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import msgspec

from gateway.control import token as tokens
from gateway.ops import flags
from gateway.ops.flags import Setting


class AdminClient(msgspec.Struct, frozen=True, kw_only=True):
    """Where the admin API is, and its token."""

    admin_url: Annotated[str, Setting("the admin listener of a gateway", metavar="URL")] = (
        "http://127.0.0.1:8081"
    )
    admin_token: Annotated[
        str | None,
        Setting("the admin token", metavar="TOKEN", default="read from <data-dir>/admin-token"),
    ] = None
    data_dir: Annotated[
        Path, Setting("the gateway's data directory, where it keeps the token", metavar="DIR")
    ] = Path("gateway-data")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`gateway sources ...`."""
    sources = commands.add_parser(
        "sources",
        help="list and change sources and keys through the admin API",
        description="Sources and keys through a running gateway's admin API (docs/admin.md).",
    )
    actions = sources.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, text: str, *positional: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=text, description=text)
        for arg in positional:
            parser.add_argument(arg)
        parser.add_argument("--json", action="store_true", help="print the API's JSON answer")
        flags.add_flags(parser, AdminClient)
        parser.set_defaults(handler=_run, verb=name)
        return parser

    action("list", "every source and its keys (masked)")
    action("create", "create a source", "source").add_argument(
        "--disabled", action="store_true", help="create it disabled"
    )
    action("disable", "disable a source: its keys are refused", "source")
    action("enable", "enable a source again", "source")
    add = action("add-key", "make a key for a source (shown this once)", "source")
    add.add_argument(
        "--kind", choices=["write_key", "commanders_act", "intilery"], default="write_key"
    )
    add.add_argument("--site-id", help="commanders_act: the site (tc_s)")
    add.add_argument("--client", help="intilery: the account's client")
    add.add_argument("--account", help="intilery: the account")
    add.add_argument("--brand", help="intilery: the one brand the key may send to")
    rotate = action("rotate-key", "replace a key (the new one is shown once)", "source", "key_id")
    rotate.add_argument(
        "--grace", type=float, default=0.0, metavar="SECONDS", help="the old key works this long"
    )
    action("revoke-key", "revoke a key now", "source", "key_id")


def _run(args: argparse.Namespace) -> int:
    client = flags.from_args(AdminClient, args)
    method, path, body = _request(args)
    try:
        token = client.admin_token or tokens.read(client.data_dir / tokens.TOKEN_FILE)
    except OSError as exc:
        print(
            f"gateway sources: no admin token: pass --admin-token (GATEWAY_ADMIN_TOKEN) or the "
            f"gateway's --data-dir ({exc.strerror}: {exc.filename})",
            file=sys.stderr,
        )
        return 2
    try:
        answer = _call(client.admin_url.rstrip("/") + path, token, method, body)
    except _Refused as exc:
        print(f"gateway sources: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
    elif args.verb == "list":
        print(_table(answer))
    elif "key" in (answer or {}):
        print(f"{answer['id']}  {answer['key']}\n(the key is shown this once: keep it now)")
    elif answer is not None:
        print(f"{answer['id']}  {'enabled' if answer['enabled'] else 'disabled'}")
    return 0


def _request(args: argparse.Namespace) -> tuple[str, str, Any]:
    source = f"/v1/sources/{getattr(args, 'source', '')}"
    if args.verb == "list":
        return "GET", "/v1/sources", None
    if args.verb == "create":
        return "POST", "/v1/sources", {"id": args.source, "enabled": not args.disabled}
    if args.verb in ("disable", "enable"):
        return "PATCH", source, {"enabled": args.verb == "enable"}
    if args.verb == "add-key":
        fields = {"site_id": args.site_id, "client": args.client, "account": args.account}
        fields |= {"brand": args.brand}
        body = {"kind": args.kind, **{k: v for k, v in fields.items() if v is not None}}
        return "POST", source + "/keys", body
    if args.verb == "rotate-key":
        return "POST", f"{source}/keys/{args.key_id}/rotate", {"graceSeconds": args.grace}
    return "DELETE", f"{source}/keys/{args.key_id}", None


class _Refused(Exception):
    """The API could not be reached, or refused the call."""


def _call(url: str, token: str, method: str, body: Any) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())
            said = f"{error['Message']}: {error['Details']}".rstrip(": ")
        except (ValueError, KeyError):
            said = exc.reason
        raise _Refused(f"{exc.code} {said}") from None
    except OSError as exc:
        raise _Refused(f"cannot reach the admin API at {url}: {exc}") from None
    return json.loads(raw) if raw else None


def _table(answer: dict[str, Any]) -> str:
    rows = [["SOURCE", "ORIGIN", "ENABLED", "KEY ID", "KIND", "KEY", "EXPIRES"]]
    for source in answer["sources"]:
        head = [source["id"], source["origin"], "yes" if source["enabled"] else "no"]
        for key in source["keys"] or [None]:
            if key is None:
                rows.append([*head, "-", "-", "-", "-"])
                continue
            ends = key.get("expiresAt")
            when = datetime.datetime.fromtimestamp(ends).isoformat(" ", "seconds") if ends else "-"
            rows.append([*head, key.get("id") or "(file)", key["kind"], key["key"], when])
    widths = [max(len(row[n]) for row in rows) for n in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join([f"mode: {answer['mode']}", *(line.rstrip() for line in lines)])
