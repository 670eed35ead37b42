"""Where is my event, with real processes: `gateway serve --workers 2`, two `gateway worker`
groups (one destination that takes everything, one that answers 500), and `gateway event`
asking the admin API as a user would (docs/admin.md)."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync
import requests

from gateway.ops.embedded import RedisProcess, free_port
from tests.helpers.gateway import ADMIN_AUTH, ADMIN_TOKEN
from tests.helpers.processes import ROOT
from tests.helpers.serve import start, stop

pytestmark = pytest.mark.slow


class _Destination(http.server.BaseHTTPRequestHandler):
    """`/ok` takes every batch; anything else answers 500."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status = 200 if self.path == "/ok" else 500
        body = b'{"success": true}' if status == 200 else b'{"error": "down"}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def destination() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Destination)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def gateway_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def until(ask: Callable[[], Any], done: Callable[[Any], bool], what: str) -> Any:
    deadline = time.monotonic() + 30
    while not done(answer := ask()):
        assert time.monotonic() < deadline, f"{what}: still {answer}"
        time.sleep(0.1)
    return answer


def test_gateway_event_follows_a_message_through_real_workers(
    tmp_path: Path, redis_server: RedisProcess, destination: str
) -> None:
    with redis_sync.Redis.from_url(redis_server.url) as store:
        store.flushall()  # counts of other tests' workers in this minute
    public, admin = free_port(), free_port()
    args = ["serve", "--workers", "2", "--redis-url", redis_server.url, "--port", str(public)]
    args += ["--admin-port", str(admin), "--admin-token", ADMIN_TOKEN, "--partitions", "2"]
    args += ["--data-dir", str(tmp_path / "data")]
    served = start(args, tmp_path / "gateway.log")
    workers: list[subprocess.Popen[bytes]] = []
    cli = ["--admin-url", f"http://127.0.0.1:{admin}", "--admin-token", ADMIN_TOKEN]

    def event(message_id: str) -> dict[str, Any]:
        done = gateway_cli("event", message_id, "--json", *cli)
        return json.loads(done.stdout) if done.returncode == 0 else {}

    try:
        until(lambda: _status(f"http://127.0.0.1:{admin}/v1/sources"), lambda s: s == 200, "admin")
        base = f"http://127.0.0.1:{public}"
        message = {"userId": "u-9", "event": "Signed Up", "messageId": "m-real"}
        assert requests.post(base + "/v1/track", json=message, timeout=10).status_code == 200
        refused = {"userId": "u-9", "messageId": "m-refused"}  # no event
        assert requests.post(base + "/v1/track", json=refused, timeout=10).status_code == 400

        worker = ["worker", "--redis-url", redis_server.url, "--partitions", "2"]
        done = gateway_cli(*worker, "--group", "ok", "--destination", "http", "--url",
                           destination + "/ok", "--burst")  # fmt: skip
        assert done.returncode == 0, done.stderr
        crm = [*worker, "--group", "crm", "--destination", "http", "--url", destination + "/crm",
               "--retries", "0", "--reclaim-idle", "2", "--max-attempts", "2"]  # fmt: skip
        workers.append(start(crm, tmp_path / "worker.log"))

        pending = until(
            lambda: event("m-real"),
            lambda e: "error" in e.get("groups", {}).get("crm", {}),
            "the CRM's first failure",
        )
        assert pending["groups"]["ok"] == {"status": "delivered"}
        assert pending["groups"]["crm"]["status"] == "pending"
        assert pending["groups"]["crm"]["attempts"] == 1
        assert "HTTP 500" in pending["groups"]["crm"]["error"]
        dead = until(
            lambda: event("m-real"),
            lambda e: e["groups"]["crm"]["status"] == "dead",
            "the dead letter",
        )
        assert dead["groups"]["crm"]["attempts"] == 2
        assert (dead["source"], dead["route"]) == ("default", "/v1/track")

        summary = gateway_cli("event", "m-real", *cli)
        assert summary.returncode == 0, summary.stderr
        assert "m-real: accepted at " in summary.stdout
        lines = summary.stdout.splitlines()
        assert any(line.split()[:3] == ["crm", "dead", "2"] for line in lines), lines
        assert any(line.split()[:2] == ["ok", "delivered"] for line in lines), lines

        reason = until(lambda: gateway_cli("event", "m-refused", *cli), _ok, "the refusal")
        assert "m-refused: refused at " in reason.stdout
        assert "reason: Invalid message: Object missing required field `event`" in reason.stdout

        never = gateway_cli("event", "m-never", *cli)
        assert never.returncode == 1
        assert "404 No such event" in never.stderr

        answer = requests.get(
            f"http://127.0.0.1:{admin}/v1/deliveries", headers=ADMIN_AUTH, timeout=10
        )
        rows = answer.json()["deliveries"]
        assert sum(r["delivered"] for r in rows if r["group"] == "ok") == 1
        assert sum(r["dead"] for r in rows if r["group"] == "crm") == 1
    finally:
        for process in workers:
            stop(process)
        assert stop(served) == 0


def _status(url: str) -> int:
    try:
        return requests.get(url, headers=ADMIN_AUTH, timeout=5).status_code
    except requests.ConnectionError:
        return 0


def _ok(done: subprocess.CompletedProcess[str]) -> bool:
    return done.returncode == 0
