"""`gateway serve` as a user runs it: a real process on the embedded server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_sync
import requests

from gateway.ops.embedded import PRIORITY, URL_FILE, RedisProcess, free_port
from tests.helpers.gateway import ADMIN_AUTH, ADMIN_TOKEN
from tests.helpers.serve import start, stop, wait_for

TRACK = {"userId": "u1", "event": "Started"}


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = free_port()
    data = tmp_path / "data"
    log = tmp_path / "gateway.log"
    # A relative data directory, as a user types it.
    process = start(
        ["serve", "--port", str(port), "--host", "127.0.0.1", "--data-dir", "data"], log
    )
    wait_for("listening on", log, process)
    yield process, port, data
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_serve_on_the_embedded_server(
    gateway_process: tuple[subprocess.Popen[bytes], int, Path], tmp_path: Path
) -> None:
    process, port, data = gateway_process
    log = (tmp_path / "gateway.log").read_text()
    assert "open mode" in log
    assert "started the embedded server at redis://127.0.0.1:" in log
    response = requests.post(f"http://127.0.0.1:{port}/v1/track", json=TRACK, timeout=10)
    assert response.status_code == 200
    assert response.json() == {"success": True}

    url = (data / URL_FILE).read_text().strip()
    store = redis_sync.Redis.from_url(url)
    assert store.xlen("gateway:events:{0}") == 1
    store.close()

    assert stop(process) == 0
    assert not (data / URL_FILE).exists()
    with pytest.raises(redis_sync.ConnectionError):  # the embedded server stopped with it
        redis_sync.Redis.from_url(url, socket_connect_timeout=1).ping()

    # Its data is on disk: a new gateway on the same data directory still has the message.
    log2 = tmp_path / "again.log"
    again = start(
        ["serve", "--port", str(port), "--host", "127.0.0.1", "--data-dir", str(data)], log2
    )
    try:
        wait_for("listening on", log2, again)
        url = (data / URL_FILE).read_text().strip()
        store = redis_sync.Redis.from_url(url)
        assert store.xlen("gateway:events:{0}") == 1
        store.close()
    finally:
        assert stop(again) == 0


def test_the_embedded_server_gets_priority_where_the_system_allows(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "redis")
    server.start()
    try:
        assert server.process is not None
        nice = os.getpriority(os.PRIO_PROCESS, server.process.pid)
        if os.geteuid() == 0:  # as CI runs; other users may lack CAP_SYS_NICE
            assert server.prioritized
        expected = PRIORITY if server.prioritized else os.getpriority(os.PRIO_PROCESS, 0)
        assert nice == expected
    finally:
        server.stop()


@pytest.mark.slow
def test_serve_with_two_processes(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "gateway.log"
    process = start(
        [
            "serve",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--workers",
            "2",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        log,
    )
    try:
        deadline = time.monotonic() + 30
        while log.read_text().count("listening on") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.read_text().count("listening on") == 2, log.read_text()
        with requests.Session() as session:
            for _ in range(20):
                assert (
                    session.post(
                        f"http://127.0.0.1:{port}/v1/t", json=TRACK, timeout=10
                    ).status_code
                    == 200
                )
        url = (tmp_path / "data" / URL_FILE).read_text().strip()
        store = redis_sync.Redis.from_url(url)
        assert store.xlen("gateway:events:{0}") == 20
        store.close()
    finally:
        assert stop(process) == 0


UNPARSEABLE = {
    b"GARBAGE\r\n\r\n": "Invalid method",
    b"POST /v1/t HTTP/1.1\r\nHost: x\r\nNo Colon\r\n\r\n": "Invalid header token",
    b"POST /v1/t HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}": (
        "Duplicate Content-Length"
    ),
    b"POST /v1/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n": (
        "Invalid character in chunk size"
    ),
}


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send `request` as is; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.mark.slow
def test_unparseable_requests_get_json_and_the_process_serves_on(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "gateway.log"
    admin = free_port()
    args = ["serve", "--port", str(port), "--host", "127.0.0.1", "--workers", "1"]
    args += ["--data-dir", str(tmp_path / "data"), "--log-level", "debug"]
    args += ["--admin-port", str(admin), "--admin-token", ADMIN_TOKEN]
    process = start(args, log)
    try:
        wait_for("listening on", log, process)
        for request, said in UNPARSEABLE.items():
            head, _, body = raw_exchange(port, request).partition(b"\r\n\r\n")
            status_line = head.split(b"\r\n")[0]
            assert status_line.endswith(b" 400 Bad Request"), head
            assert b"Content-Type: application/json" in head
            error = json.loads(body)
            assert error["Message"] == "Malformed HTTP request", error
            assert error["Details"].startswith(said), error
        answer = requests.post(f"http://127.0.0.1:{port}/v1/t", json=TRACK, timeout=10)
        assert answer.json() == {"success": True}
        metrics = requests.get(
            f"http://127.0.0.1:{admin}/metrics", headers=ADMIN_AUTH, timeout=10
        ).text
        assert 'gateway_messages_rejected_total{reason="malformed"} 4.0' in metrics
        text = log.read_text()
        assert text.count("Malformed HTTP request from 127.0.0.1") == 4
        assert "Traceback" not in text
        assert "ERROR" not in text
    finally:
        assert stop(process) == 0
