"""The `gateway` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway import __version__
from gateway.http import pixel_url
from gateway.ingest.sources import SourcesError
from gateway.ops import logs
from gateway.ops.embedded import EmbeddedError
from gateway.ops.logs import LOG_FORMATS
from gateway.settings import FSYNC_POLICIES, Settings, SettingsError, parse_size
from gateway.worker.cli import add_commands as _add_worker

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="A Segment-style event collection gateway: HTTP tracking API into Redis "
        "Streams. Every flag is also an environment variable GATEWAY_<FLAG>.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(commands)
    _add_worker(commands)
    pixel_url.add_command(commands)
    return parser


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the HTTP tracking API",
        description="Run the HTTP tracking API. With no --redis-url, an embedded "
        "Redis-compatible server is started with its data under --data-dir.",
    )
    serve.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument(
        "--redis-url",
        help="redis://host:port/db of your Redis or Valkey; for a Redis Cluster any node's "
        "redis://host:port (detected) or redis+cluster://host:port",
    )
    serve.add_argument("--sources", type=Path, help="TOML file of sources and writeKeys")
    serve.add_argument(
        "--workers", type=int, help="processes sharing the port (default: one per core)"
    )
    serve.add_argument("--partitions", type=int, help="stream partitions (default 1)")
    serve.add_argument("--data-dir", type=Path, help="local state (default ./gateway-data)")
    serve.add_argument("--log-level", help="debug, info, warning, error (default info)")
    serve.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="json (one object a line), text, or auto: text on a terminal, else json "
        "(default auto)",
    )
    serve.add_argument(
        "--redis-timeout",
        type=float,
        help="seconds Redis may take before messages go to the spool instead (default 2)",
    )
    serve.add_argument(
        "--spool-max-bytes",
        type=_size,
        help="disk the spool may use per process while Redis is away, e.g. 512M (default 1G)",
    )
    serve.add_argument(
        "--spool-fsync",
        choices=FSYNC_POLICIES,
        help="fsync the spool before answering (always), every second (everysec, default) "
        "or never (no); every policy survives a crash of the gateway process",
    )
    serve.add_argument(
        "--dedupe-window",
        type=int,
        help="seconds a messageId is remembered per source to drop duplicates; 0: off "
        "(default 3600)",
    )
    serve.add_argument(
        "--shutdown-grace",
        type=float,
        help="seconds to finish in-flight requests and flush on SIGTERM/SIGINT (default 10)",
    )
    serve.add_argument(
        "--public-url",
        help="the gateway's URL as browsers reach it, e.g. https://t.example.com (default: "
        "from each request's Host)",
    )
    serve.add_argument(
        "--analytics-js",
        type=Path,
        metavar="DIR",
        help="serve this analytics.js build (dist/umd of @segment/analytics-next) as "
        "/analytics.js/v1/{writeKey}/analytics.min.js",
    )
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from gateway.server import serve

    settings = Settings.load(
        host=args.host,
        port=args.port,
        redis_url=args.redis_url,
        sources=args.sources,
        workers=args.workers,
        partitions=args.partitions,
        data_dir=args.data_dir,
        log_level=args.log_level,
        log_format=args.log_format,
        redis_timeout=args.redis_timeout,
        spool_max_bytes=args.spool_max_bytes,
        spool_fsync=args.spool_fsync,
        dedupe_window=args.dedupe_window,
        shutdown_grace=args.shutdown_grace,
        public_url=args.public_url,
        analytics_js=args.analytics_js,
    )
    logs.configure(settings.log_level, settings.log_format)
    return serve(settings)


def _size(value: str) -> int:
    try:
        return parse_size(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a size: {value!r} (e.g. 1048576, 512M, 1G)"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gateway` console script."""
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    try:
        return handler(args)
    except (SettingsError, SourcesError, EmbeddedError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
