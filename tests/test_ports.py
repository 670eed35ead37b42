"""One gateway a port: a port held by anyone else stops `gateway serve` at once, with one line."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_sync
import requests

from gateway.ops.embedded import URL_FILE, RedisProcess, free_port
from gateway.server import QUICK_FAILURES, _supervise
from gateway.settings import Settings
from tests.helpers.serve import start, stop

TRACK = {"userId": "u1", "event": "Started"}


def serve_args(port: int, data: Path, workers: int) -> list[str]:
    return [
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--data-dir",
        str(data),
    ]


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port a plain program listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_port_held_by_another_program_stops_serve_with_one_line(
    held_port: int, tmp_path: Path, workers: int
) -> None:
    log = tmp_path / "out.log"
    process = start(serve_args(held_port, tmp_path / "data", workers), log)
    assert process.wait(30) == 1
    lines = error_lines(log.read_text())
    assert len(lines) == 1, lines
    assert f"port {held_port} on 127.0.0.1 is already in use" in lines[0]
    assert "Traceback" not in lines[0]


@pytest.mark.slow
def test_a_second_gateway_on_the_same_port_exits_and_the_first_keeps_all_traffic(
    tmp_path: Path,
) -> None:
    port = free_port()
    first_log = tmp_path / "first.log"
    first = start(serve_args(port, tmp_path / "first", 2), first_log)
    try:
        deadline = time.monotonic() + 30
        while first_log.read_text().count("listening on") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first_log.read_text().count("listening on") == 2, first_log.read_text()

        second_log = tmp_path / "second.log"
        second = start(serve_args(port, tmp_path / "second", 2), second_log)
        assert second.wait(30) == 1
        lines = error_lines(second_log.read_text())
        assert len(lines) == 1, lines
        assert "already in use" in lines[0]
        assert not (tmp_path / "second" / URL_FILE).exists()  # it started nothing

        with requests.Session() as session:
            for _ in range(20):
                answer = session.post(f"http://127.0.0.1:{port}/v1/t", json=TRACK, timeout=10)
                assert answer.status_code == 200
        store = redis_sync.Redis.from_url((tmp_path / "first" / URL_FILE).read_text().strip())
        assert store.xlen("gateway:events:{0}") == 20
        store.close()
    finally:
        assert stop(first) == 0


def test_children_that_die_at_start_are_not_restarted_in_a_loop(tmp_path: Path) -> None:
    # Each child fails while starting its app (a Redis URL no client can use); the
    # supervisor gives up after a few quick failures instead of restarting them forever.
    settings = Settings(
        host="127.0.0.1",
        port=free_port(),
        workers=1,
        redis_url="nonsense://nowhere",
        data_dir=tmp_path / "data",
    )
    began = time.monotonic()
    assert _supervise(settings) is False
    assert time.monotonic() - began < 60
    assert QUICK_FAILURES == 3


def test_a_worker_whose_metrics_port_is_taken_says_which_flag(
    held_port: int, redis_server: RedisProcess
) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "worker",
            "--group",
            "g",
            "--destination",
            "stdout",
            "--redis-url",
            redis_server.url,
            "--metrics-host",
            "127.0.0.1",
            "--metrics-port",
            str(held_port),
            "--burst",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert f"--metrics-port {held_port} on 127.0.0.1" in last
    assert "Redis" not in last
