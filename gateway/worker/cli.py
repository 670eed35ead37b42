"""`gateway worker`, `gateway status` and `gateway dead-letters`: flags to running code.

Every flag is also an environment variable `GATEWAY_<FLAG>` (`GATEWAY_GROUP`,
`GATEWAY_RECLAIM_IDLE`, ...); `--redis-url`, `--partitions` and `--data-dir` are the
same settings `gateway serve` reads.
"""

from __future__ import annotations

import argparse
import functools
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.exceptions import RedisClusterException, RedisError

from gateway.constants import all_events_keys
from gateway.ops import logs
from gateway.ops.logs import LOG_FORMATS
from gateway.settings import Settings
from gateway.worker import config, run
from gateway.worker.connection import NoRedisError, resolve_url
from gateway.worker.destinations import BUILTINS, Destination
from gateway.worker.options import ConsumerOptions

# Which single-destination flags each built-in takes (a module:Class kind takes any).
_FLAGS = {"url": "--url", "headers": "--header", "write_key": "--write-key",
          "timeout": "--timeout", "retries": "--retries", "path": "--path",
          "max_bytes": "--max-bytes"}  # fmt: skip
_KIND_OPTIONS = {
    "http": {"url", "headers", "write_key", "timeout", "retries"},
    "file": {"path", "max_bytes"},
    "stdout": set(),
}


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the worker side's subcommands to the `gateway` parser."""
    _add_worker(commands)
    _add_status(commands)
    _add_dead_letters(commands)


def _env(name: str, default: str | None = None) -> str | None:
    # argparse runs a string default through the flag's `type`, so env values are checked.
    return os.environ.get(f"GATEWAY_{name.upper()}", default)


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        help="redis://host:port/db, or any node of a Redis Cluster (default: the embedded "
        "server of `gateway serve` running with the same --data-dir)",
    )
    parser.add_argument("--data-dir", type=Path, help="the gateway's data directory")
    parser.add_argument(
        "--partitions",
        type=int,
        help="partitions to read at least (default 1); more that exist are found too",
    )
    parser.add_argument("--log-level", default=_env("log_level", "info"))
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=_env("log_format", "auto"),
        help="json, text, or auto: text on a terminal, else json (default auto)",
    )


def _destination_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("destinations (one on the command line, or --config)")
    group.add_argument(
        "--config",
        type=Path,
        default=_env("worker_config"),
        help="TOML file with [[destination]] tables (see docs/workers.md)",
    )
    group.add_argument(
        "--destination",
        metavar="KIND",
        default=_env("destination"),
        help=f"{', '.join(BUILTINS)}, or package.module:Class",
    )
    group.add_argument("--name", help="the destination's name for `integrations` (default KIND)")
    group.add_argument("--url", help="http: where to POST the batches")
    group.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="http: a request header (repeatable), e.g. 'Authorization: Basic ...'",
    )
    group.add_argument("--write-key", help="http: sent as Basic auth, as Segment's SDKs do")
    group.add_argument("--timeout", type=float, help="http: seconds per request (default 10)")
    group.add_argument(
        "--retries", type=int, help="http: in-place retries of 5xx/429/network errors (default 3)"
    )
    group.add_argument("--path", type=Path, help="file: the directory of the NDJSON files")
    group.add_argument("--max-bytes", type=int, help="file: rotate at this size (default 100 MB)")


def _add_worker(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "worker",
        help="deliver the streams to destinations, at least once",
        description="Read every partition as a consumer of a Redis consumer group and "
        "deliver each message to its destinations; acknowledge it once they accepted it.",
    )
    _connection_flags(parser)
    parser.add_argument(
        "--group", default=_env("group"), help="consumer group (workers in one group share)"
    )
    parser.add_argument(
        "--consumer", default=_env("consumer"), help="this consumer's name (default host-pid)"
    )
    _destination_flags(parser)
    parser.add_argument(
        "--batch-size", type=int, default=_env("batch_size", "100"), help="(default 100)"
    )
    parser.add_argument(
        "--reclaim-idle",
        type=float,
        default=_env("reclaim_idle", "30"),
        help="seconds before an unacknowledged entry is retried, by any worker (default 30)",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=_env("max_attempts", "10"),
        help="attempts before an entry goes to the dead letters (default 10)",
    )
    parser.add_argument(
        "--block",
        type=float,
        default=_env("block", "1"),
        help="seconds a read waits for new entries (default 1)",
    )
    parser.add_argument(
        "--burst", action="store_true", help="exit once nothing is left to read or retry"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=_env("metrics_port"),
        help="serve Prometheus /metrics on this port (default: none)",
    )
    parser.add_argument(
        "--metrics-host",
        default=_env("metrics_host", "0.0.0.0"),
        help="address of --metrics-port (default 0.0.0.0)",
    )
    parser.set_defaults(handler=functools.partial(_guarded, _worker))


def _add_status(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "status",
        help="stream lengths, and each group's pending count and lag",
        description="Per partition the stream length; per consumer group and partition the "
        "consumers, pending (delivered, not acknowledged) and lag (not yet delivered).",
    )
    _connection_flags(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.set_defaults(handler=functools.partial(_guarded, _status))


def _add_dead_letters(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "dead-letters",
        help="list or re-drive the messages a group gave up on",
        description="Messages a group failed to deliver max-attempts times are kept in the "
        "stream gateway:dead:{GROUP}.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="print the dead letters, one JSON line each")
    _connection_flags(listing)
    listing.add_argument("--group", default=_env("group"), required=_env("group") is None)
    listing.add_argument("--limit", type=int, default=100, help="(default 100)")
    listing.set_defaults(handler=functools.partial(_guarded, _list))
    again = actions.add_parser(
        "redrive",
        help="send the dead letters again to the destinations that refused them",
        description="Send each dead letter to the destinations (by name) that refused it; "
        "delete it once they accept it. Exit 1 if some were refused again.",
    )
    _connection_flags(again)
    again.add_argument("--group", default=_env("group"), required=_env("group") is None)
    _destination_flags(again)
    again.add_argument("--batch-size", type=int, default=100, help="(default 100)")
    again.add_argument("--limit", type=int, help="at most this many (default all)")
    again.set_defaults(handler=functools.partial(_guarded, _redrive))


def _guarded(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        logs.configure(args.log_level, args.log_format)
    except ValueError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    try:
        return command(args)
    except (config.ConfigError, NoRedisError, ValueError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except (RedisError, RedisClusterException, OSError) as exc:
        print(f"gateway: Redis: {exc}", file=sys.stderr)
        return 1


def _url_and_partitions(args: argparse.Namespace) -> tuple[str, int]:
    settings = Settings.load(
        redis_url=args.redis_url, partitions=args.partitions, data_dir=args.data_dir
    )
    return resolve_url(settings.redis_url, settings.data_dir), settings.partitions


def _worker(args: argparse.Namespace) -> int:
    if not args.group:
        raise config.ConfigError("--group is required (or GATEWAY_GROUP)")
    destinations = _destinations(args)
    url, partitions = _url_and_partitions(args)
    consumer = args.consumer or f"{socket.gethostname()}-{os.getpid()}"
    options = ConsumerOptions(  # checked before connecting; the streams are found later
        group=args.group,
        consumer=consumer,
        streams=tuple(all_events_keys(partitions)),
        batch_size=args.batch_size,
        block=args.block,
        reclaim_idle=args.reclaim_idle,
        max_attempts=args.max_attempts,
        burst=args.burst,
    )
    address = None if args.metrics_port is None else (args.metrics_host, args.metrics_port)
    return run.run(lambda: run.worker(url, partitions, destinations, options, address))


def _status(args: argparse.Namespace) -> int:
    url, partitions = _url_and_partitions(args)
    return run.run(lambda: run.show_status(url, partitions, args.json))


def _list(args: argparse.Namespace) -> int:
    url, _ = _url_and_partitions(args)
    return run.run(lambda: run.list_dead_letters(url, args.group, args.limit))


def _redrive(args: argparse.Namespace) -> int:
    destinations = _destinations(args)
    url, _ = _url_and_partitions(args)
    return run.run(
        lambda: run.redrive_dead_letters(url, args.group, destinations, args.batch_size, args.limit)
    )


def _destinations(args: argparse.Namespace) -> list[Destination]:
    given = _single_options(args)
    if args.config is not None:
        if args.destination or given or args.name:
            raise config.ConfigError("give either --config or --destination with its flags")
        return config.load_file(args.config)
    if not args.destination:
        raise config.ConfigError("give --destination KIND (http, file, stdout) or --config FILE")
    kind: str = args.destination
    allowed = _KIND_OPTIONS.get(kind)
    if allowed is not None:
        wrong = sorted(_FLAGS[name] for name in given if name not in allowed)
        if wrong:
            raise config.ConfigError(f"{', '.join(wrong)}: not an option of --destination {kind}")
    name = args.name or (kind if kind in BUILTINS else kind.rpartition(":")[2])
    return [config.build(kind, name, given, at=f"--destination {kind}")]


def _single_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.header:
        options["headers"] = dict(config.parse_header(h) for h in args.header)
    for name in ("url", "write_key", "timeout", "retries", "path", "max_bytes"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    return options
