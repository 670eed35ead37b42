"""`gateway serve` and friends as a user runs them: a `subprocess.Popen` logging to a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.ops.embedded import free_port
from tests.helpers.processes import ROOT


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """`gateway ARGS` in the log's directory (relative paths are relative to it); its admin
    listener on a free port unless ARGS say which."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GATEWAY_ADMIN_PORT": str(free_port())}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=log.parent,
        )


def wait_for(text: str, log: Path, process: subprocess.Popen[bytes], timeout: float = 20) -> str:
    """The log once it contains `text`; the test fails if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text()
        if text in content:
            return content
        if process.poll() is not None:
            pytest.fail(f"gateway exited with {process.returncode}:\n{content}")
        time.sleep(0.05)
    pytest.fail(f"{text!r} not printed within {timeout}s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, as systemd stops it; the exit code."""
    process.send_signal(signal.SIGTERM)
    return process.wait(20)
