"""`gateway pixel-url`: a ready pixel URL, so nobody base64-encodes a message by hand."""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import msgspec

from gateway.errors import ApiError
from gateway.http.pixel import encode_data, nest
from gateway.ingest.validate import TYPES

DEFAULT_BASE_URL = "http://localhost:8080"


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `pixel-url` on the `gateway` command line."""
    command = commands.add_parser(
        "pixel-url",
        help="print a tracking pixel URL for an email or a page",
        description="Print a /v1/pixel URL whose data is the message described by the flags. "
        "Dotted names nest: --property order.total=42 gives "
        '{"properties": {"order": {"total": "42"}}}. Values are strings.',
    )
    command.add_argument("--type", choices=TYPES, default="track", help="default track")
    command.add_argument("--write-key", help="the source's writeKey (put inside the data)")
    command.add_argument("--event", help="the event name (track)")
    command.add_argument("--name", help="the page or screen name (page, screen)")
    command.add_argument("--user-id", help="the recipient's userId")
    command.add_argument(
        "--anonymous-id",
        help="an anonymousId; with neither id, one derived from the message is used",
    )
    command.add_argument("--group-id", help="the groupId (group)")
    command.add_argument("--previous-id", help="the previousId (alias)")
    command.add_argument(
        "--property", action="append", default=[], metavar="NAME=VALUE", help="repeatable"
    )
    command.add_argument(
        "--trait", action="append", default=[], metavar="NAME=VALUE", help="repeatable"
    )
    command.add_argument(
        "--base-url", default=DEFAULT_BASE_URL, help=f"the gateway (default {DEFAULT_BASE_URL})"
    )
    command.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the URL; exit 2 when the message would be refused."""
    try:
        message = build_message(args)
    except ValueError as exc:
        print(f"gateway pixel-url: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:  # conflicting dotted names
        print(f"gateway pixel-url: {exc.message}: {exc.details}", file=sys.stderr)
        return 2
    print(pixel_url(args.base_url, args.type, message))
    return 0


def build_message(args: argparse.Namespace) -> dict[str, Any]:
    """The message the flags describe; a `ValueError` naming what is missing."""
    required = {"track": "event", "group": "group_id", "alias": "previous_id"}.get(args.type)
    if required and not getattr(args, required):
        raise ValueError(f"--type {args.type} needs --{required.replace('_', '-')}")
    if args.type == "alias" and not args.user_id:
        raise ValueError("--type alias needs --user-id")
    message: dict[str, Any] = {}
    fields = {
        "event": args.event,
        "name": args.name,
        "userId": args.user_id,
        "anonymousId": args.anonymous_id,
        "groupId": args.group_id,
        "previousId": args.previous_id,
        "writeKey": args.write_key,
    }
    message.update({field: value for field, value in fields.items() if value})
    for field, pairs in (("properties", args.property), ("traits", args.trait)):
        if pairs:
            message[field] = nest(_pairs(pairs, field))
    if not args.user_id and not args.anonymous_id:
        # The same message gives the same id: every open of this URL is one anonymous user.
        canonical = msgspec.json.encode({**message, "type": args.type}, order="sorted")
        message["anonymousId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, canonical.decode()))
    return message


def pixel_url(base_url: str, kind: str, message: dict[str, Any]) -> str:
    """`{base_url}/v1/pixel/{kind}?data=...`."""
    return f"{base_url.rstrip('/')}/v1/pixel/{kind}?data={encode_data(message)}"


def _pairs(pairs: list[str], field: str) -> list[tuple[str, str]]:
    out = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            flag = "--property" if field == "properties" else "--trait"
            raise ValueError(f"{flag} {pair!r}: expected NAME=VALUE")
        out.append((name, value))
    return out
