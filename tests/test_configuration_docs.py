"""docs/configuration.md lists every flag and variable of `serve` and the worker's commands."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateway.cli import build_parser
from gateway.ops import flags
from gateway.settings import Settings
from gateway.worker.settings import ReplaySettings, WorkerSettings

DOC = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, list[str]]:
    """Each (sub)command's flags, by its name: `serve`, `worker`, `dead-letters redrive`."""
    found: dict[str, list[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_commands(sub, f"{prefix} {name}".strip()))
        elif prefix:
            found.setdefault(prefix, []).extend(
                o for o in action.option_strings if o.startswith("--") and o != "--help"
            )
    return found


COMMANDS = _commands(build_parser())


@pytest.mark.parametrize(
    "command",
    ["serve", "worker", "status", "dead-letters list", "dead-letters redrive", "replay"],
)
def test_every_flag_is_documented(command: str) -> None:
    missing = [flag for flag in COMMANDS[command] if f"`{flag}" not in DOC]
    assert missing == []


@pytest.mark.parametrize("kind", [Settings, WorkerSettings, ReplaySettings])
def test_every_variable_is_documented_beside_its_flag(
    kind: type[Settings | WorkerSettings | ReplaySettings],
) -> None:
    rows = [line for line in DOC.splitlines() if line.startswith("| `--")]
    missing = [
        (flag, env)
        for flag, env in flags.flags(kind).items()
        if not any(line.startswith(f"| `{flag}` | `{env}` |") for line in rows)
    ]
    assert missing == []


def test_the_log_formats_are_the_loggers() -> None:
    from typing import get_args

    from gateway.ops.logs import LOG_FORMATS
    from gateway.settings import LogFormat

    assert set(get_args(LogFormat)) == set(LOG_FORMATS)
