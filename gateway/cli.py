"""The `gateway` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from gateway import __version__
from gateway.control import cli as control_cli
from gateway.control import event_cli, plan_cli, regulations_cli
from gateway.http import pixel_url
from gateway.ingest.sources import SourcesError
from gateway.ops import flags, logs
from gateway.ops.embedded import EmbeddedError
from gateway.settings import Settings, SettingsError
from gateway.worker.cli import add_commands as _add_worker

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    # Typed as argparse's own: its subcommands' parsers are made of the same class, Parser.
    parser: argparse.ArgumentParser = flags.Parser(
        prog="gateway",
        description="A Segment-style event collection gateway: HTTP tracking API into Redis "
        "Streams. Every flag is also an environment variable GATEWAY_<FLAG>.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(commands)
    _add_worker(commands)
    pixel_url.add_command(commands)
    control_cli.add_commands(commands)
    regulations_cli.add_commands(commands)
    event_cli.add_command(commands)
    plan_cli.add_command(commands)
    return parser


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the HTTP tracking API",
        description="Run the HTTP tracking API. With no --redis-url, an embedded "
        "Redis-compatible server is started with its data under --data-dir. Every flag is "
        "also the environment variable in parentheses; a flag wins over its variable.",
    )
    flags.add_flags(serve, Settings)
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from gateway.server import serve

    settings = flags.from_args(Settings, args)
    logs.configure(settings.log_level, settings.log_format)
    return serve(settings)


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
