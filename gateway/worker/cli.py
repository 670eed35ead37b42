"""`gateway worker`, `gateway status` and `gateway dead-letters`: flags to running code.

Their settings (`gateway.worker.settings`) are read as `gateway serve`'s are: each a flag
and a variable `GATEWAY_<NAME>` (`GATEWAY_GROUP`, `GATEWAY_RECLAIM_IDLE`, ...), checked
before anything starts; `--redis-url`, `--partitions`, `--data-dir` and the log settings
are the same as `gateway serve`'s. A destination's own options are flags only.
"""

from __future__ import annotations

import argparse
import functools
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from redis.exceptions import RedisClusterException, RedisError

from gateway.constants import all_events_keys
from gateway.ops import flags, logs
from gateway.ops.flags import SettingsError
from gateway.settings import Common
from gateway.store.retention import Retention
from gateway.worker import config, replay, run, tail
from gateway.worker.connection import NoRedisError, resolve_url
from gateway.worker.destinations import BUILTINS, Destination
from gateway.worker.options import ConsumerOptions
from gateway.worker.settings import (
    DeliverySettings,
    DestinationSettings,
    GroupSettings,
    ReplaySettings,
    WorkerSettings,
)

S = TypeVar("S", bound=Common)

# Which single-destination flags each built-in takes (a module:Class kind takes any).
_FLAGS = {"url": "--url", "headers": "--header", "write_key": "--write-key",
          "timeout": "--timeout", "retries": "--retries", "path": "--path",
          "max_bytes": "--max-bytes"}  # fmt: skip
_KIND_OPTIONS = {
    "http": {"url", "headers", "write_key", "timeout", "retries"},
    "file": {"path", "max_bytes"},
    "archive": {"path", "max_bytes"},
    "stdout": set(),
}


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the worker side's subcommands to the `gateway` parser."""
    _add_worker(commands)
    _add_status(commands)
    _add_tail(commands)
    _add_dead_letters(commands)
    _add_replay(commands)


def _destination_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "options of --destination (with --config, the file holds them)"
    )
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
    group.add_argument(
        "--path", type=Path, help="file, archive: the directory of the (gzip) NDJSON files"
    )
    group.add_argument(
        "--max-bytes",
        type=int,
        help="file, archive: rotate at this size (default 100 MB; archive: 64 MB)",
    )


def _add_worker(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "worker",
        help="deliver the streams to destinations, at least once",
        description="Read every partition as a consumer of a Redis consumer group and "
        "deliver each message to its destinations; acknowledge it once they accepted it. "
        "Every flag but a destination's options is also the environment variable in "
        "parentheses; a flag wins over its variable.",
    )
    flags.add_flags(parser, WorkerSettings)
    _destination_options(parser)
    parser.set_defaults(handler=functools.partial(_guarded, WorkerSettings, _worker))


def _add_status(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "status",
        help="stream lengths, and each group's pending count and lag",
        description="Per partition the stream length; per consumer group and partition the "
        "consumers, pending (delivered, not acknowledged) and lag (not yet delivered).",
    )
    flags.add_flags(parser, Common)
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.set_defaults(handler=functools.partial(_guarded, Common, _status))


def _add_tail(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "tail",
        help="print the newest messages of every partition, as JSON lines",
        description="The newest messages over every partition, oldest first, one JSON line "
        "each (stream, entry id, source, message). Reads only: no worker misses anything.",
    )
    flags.add_flags(parser, Common)
    parser.add_argument(
        "-n", "--count", type=int, default=10, help="how many messages (default 10)"
    )
    parser.add_argument(
        "-f", "--follow", action="store_true", help="then print messages as they arrive"
    )
    parser.set_defaults(handler=functools.partial(_guarded, Common, _tail))


def _add_dead_letters(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "dead-letters",
        help="list or re-drive the messages a group gave up on",
        description="Messages a group failed to deliver max-attempts times are kept in the "
        "stream gateway:dead:{GROUP}.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="print the dead letters, one JSON line each")
    flags.add_flags(listing, GroupSettings)
    listing.add_argument("--limit", type=int, default=100, help="(default 100)")
    listing.set_defaults(handler=functools.partial(_guarded, GroupSettings, _list))
    again = actions.add_parser(
        "redrive",
        help="send the dead letters again to the destinations that refused them",
        description="Send each dead letter to the destinations (by name) that refused it; "
        "delete it once they accept it. Exit 1 if some were refused again.",
    )
    flags.add_flags(again, DeliverySettings)
    _destination_options(again)
    again.add_argument("--limit", type=int, help="at most this many (default all)")
    again.set_defaults(handler=functools.partial(_guarded, DeliverySettings, _redrive))


def _add_replay(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "replay",
        help="send archived messages again: to a destination, or into the streams",
        description="Read an archive (gateway worker --destination archive) in time order, "
        "the messages of --source received from --since to --until, and send them to one "
        "destination (its flags as for the worker), the destinations of --config, or back "
        "into the streams (--to-streams). Run the same command again to resume.",
    )
    flags.add_flags(parser, ReplaySettings)
    _destination_options(parser)
    parser.set_defaults(handler=functools.partial(_guarded, ReplaySettings, _replay))


def _guarded(
    kind: type[S], command: Callable[[S, argparse.Namespace], int], args: argparse.Namespace
) -> int:
    """Settings of `kind` from the flags and environment, checked; then `command`."""
    try:
        settings = flags.from_args(kind, args)
    except SettingsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        return command(settings, args)
    except (config.ConfigError, NoRedisError, ValueError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except (RedisError, RedisClusterException, OSError) as exc:
        print(f"gateway: Redis: {exc}", file=sys.stderr)
        return 1


def _worker(settings: WorkerSettings, args: argparse.Namespace) -> int:
    destinations = _destinations(settings, args)
    url = resolve_url(settings.redis_url, settings.data_dir)
    consumer = settings.consumer or f"{socket.gethostname()}-{os.getpid()}"
    options = ConsumerOptions(  # the streams are found once connected
        group=settings.group,
        consumer=consumer,
        streams=tuple(all_events_keys(settings.partitions)),
        batch_size=settings.batch_size,
        block=settings.block,
        reclaim_idle=settings.reclaim_idle,
        max_attempts=settings.max_attempts,
        burst=settings.burst,
    )
    address = (
        None if settings.metrics_port is None else (settings.metrics_host, settings.metrics_port)
    )
    retention = Retention(settings.retention_acked, settings.retention_max_age)
    return run.run(
        lambda: run.worker(url, settings.partitions, destinations, options, address, retention)
    )


def _replay(settings: ReplaySettings, args: argparse.Namespace) -> int:
    if settings.to_streams:
        if _single_options(args):
            raise config.ConfigError("--to-streams takes no destination options")
        url = resolve_url(settings.redis_url, settings.data_dir)
        return run.run(lambda: replay.command(settings, [], url))
    destinations = _destinations(settings, args)
    return run.run(lambda: replay.command(settings, destinations, None))


def _status(settings: Common, args: argparse.Namespace) -> int:
    url = resolve_url(settings.redis_url, settings.data_dir)
    return run.run(lambda: run.show_status(url, settings.partitions, args.json))


def _tail(settings: Common, args: argparse.Namespace) -> int:
    url = resolve_url(settings.redis_url, settings.data_dir)
    try:
        return run.run(lambda: tail.run_tail(url, settings.partitions, args.count, args.follow))
    except KeyboardInterrupt:
        return 0


def _list(settings: GroupSettings, args: argparse.Namespace) -> int:
    url = resolve_url(settings.redis_url, settings.data_dir)
    return run.run(lambda: run.list_dead_letters(url, settings.group, args.limit))


def _redrive(settings: DeliverySettings, args: argparse.Namespace) -> int:
    destinations = _destinations(settings, args)
    url = resolve_url(settings.redis_url, settings.data_dir)
    return run.run(
        lambda: run.redrive_dead_letters(
            url, settings.group, destinations, settings.batch_size, args.limit
        )
    )


def _destinations(settings: DestinationSettings, args: argparse.Namespace) -> list[Destination]:
    given = _single_options(args)
    if settings.worker_config is not None:
        if given or settings.destination_name:
            raise config.ConfigError("give either --config or --destination with its flags")
        return config.load_file(settings.worker_config)
    kind = settings.destination or ""  # one of the two: DeliverySettings.check
    allowed = _KIND_OPTIONS.get(kind)
    if allowed is not None:
        wrong = sorted(_FLAGS[name] for name in given if name not in allowed)
        if wrong:
            raise config.ConfigError(f"{', '.join(wrong)}: not an option of --destination {kind}")
    name = settings.destination_name or (kind if kind in BUILTINS else kind.rpartition(":")[2])
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
