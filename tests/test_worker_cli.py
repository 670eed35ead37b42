"""The worker commands' flags: mistakes are refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import build_parser, main
from gateway.ops import flags
from gateway.worker.settings import WorkerSettings


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["worker", "--destination", "stdout"], "--group (or GATEWAY_GROUP) is required"),
        (
            ["worker", "--group", "g"],
            "--destination (or GATEWAY_DESTINATION) is required, or --config FILE",
        ),
        (
            ["worker", "--group", "g", "--destination", "file", "--path", "d", "--url", "http://x"],
            "--url: not an option of --destination file",
        ),
        (["worker", "--group", "g", "--destination", "http"], "missing 1 required"),
        (
            [
                "worker",
                "--group",
                "g",
                "--destination",
                "http",
                "--url",
                "http://x",
                "--header",
                "no colon",
            ],
            "expected 'Name: value'",
        ),
        (
            ["worker", "--group", "g", "--config", "c.toml", "--destination", "stdout"],
            "give either --config or --destination, not both",
        ),
        (
            [
                "worker",
                "--group",
                "g",
                "--destination",
                "stdout",
                "--max-attempts",
                "0",
                "--redis-url",
                "redis://127.0.0.1:1",
            ],
            "--max-attempts='0' (or GATEWAY_MAX_ATTEMPTS): must be an integer, 1 or more",
        ),
        (["status", "--data-dir", "nowhere"], "pass --redis-url"),
    ],
)
def test_mistakes_exit_2_with_a_message(
    args: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert error in capsys.readouterr().err


def test_worker_flags_come_from_the_environment_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEWAY_GROUP", "warehouse")
    monkeypatch.setenv("GATEWAY_RECLAIM_IDLE", "2.5")
    monkeypatch.setenv("GATEWAY_MAX_ATTEMPTS", "4")
    args = build_parser().parse_args(["worker", "--destination", "stdout", "--max-attempts", "5"])
    settings = flags.from_args(WorkerSettings, args)
    assert (settings.group, settings.reclaim_idle, settings.max_attempts) == ("warehouse", 2.5, 5)


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_help_says_what_is_required_and_what_is_allowed(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert "--log-level {critical,debug,error,info,warning}" in text
    assert "--log-format {auto,json,text}" in text
    assert "(default info; GATEWAY_LOG_LEVEL)" in text
    if command == "worker":
        assert "(required; GATEWAY_GROUP)" in text
        assert "this or --config is required): one of http, file, stdout" in text
    else:
        assert "--spool-fsync {always,everysec,no}" in text
        assert "port to listen on: an integer from 0 to 65535 (default 8080" in text
