"""The control plane with real processes: `gateway serve --workers 2` on a real Redis, sources
and keys changed through the admin API and the sources file while it serves (docs/admin.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync
import requests

from gateway.ops.embedded import RedisProcess, free_port
from tests.helpers.gateway import ADMIN_AUTH as AUTH
from tests.helpers.gateway import ADMIN_TOKEN as TOKEN
from tests.helpers.serve import start, stop

TRACK = {"userId": "u1", "event": "Signed Up"}
TRIES = 30
"""Requests, each on a new connection, so that the kernel spreads them over both processes."""


class Gateway:
    """`gateway serve --workers 2` with JSON logs, its public and admin URLs."""

    def __init__(self, tmp_path: Path, redis_url: str, *args: str) -> None:
        self.public = f"http://127.0.0.1:{free_port()}"
        self.admin = f"http://127.0.0.1:{free_port()}"
        self.args = ["serve", "--workers", "2", "--host", "127.0.0.1", "--redis-url", redis_url]
        self.args += ["--port", self.public.rsplit(":", 1)[1]]
        self.args += ["--admin-port", self.admin.rsplit(":", 1)[1], "--admin-token", TOKEN]
        self.args += ["--data-dir", str(tmp_path / "data"), "--log-format", "json", *args]
        self.tmp_path = tmp_path
        self.logs: list[Path] = []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.tmp_path / f"gateway-{len(self.logs)}.log"
        self.logs.append(log)
        self.process = start(self.args, log)
        deadline = time.monotonic() + 30
        while len(self.pids("listening")) < 2:
            assert self.process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)

    def stop(self) -> None:
        assert self.process is not None
        assert stop(self.process) == 0

    def events(self) -> list[dict[str, Any]]:
        """The current run's log lines."""
        lines = self.logs[-1].read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def pids(self, event: str) -> set[int]:
        """The processes that logged `event`."""
        return {line["pid"] for line in self.events() if line.get("event") == event}

    def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        answer = requests.request(method, self.admin + path, json=body, headers=AUTH, timeout=10)
        assert answer.status_code == status, answer.text
        return answer.json() if answer.content else None

    def statuses(self, key: str) -> set[int]:
        """The statuses of `TRIES` tracks with `key`, each on its own connection."""
        return {
            requests.post(
                self.public + "/v1/track", json={**TRACK, "writeKey": key}, timeout=10
            ).status_code
            for _ in range(TRIES)
        }


@pytest.fixture
def store(redis_server: RedisProcess) -> Iterator[redis_sync.Redis]:
    client = redis_sync.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def gateway(tmp_path: Path, redis_server: RedisProcess) -> Iterator[Gateway]:
    made = Gateway(tmp_path, redis_server.url)
    yield made
    if made.process is not None and made.process.poll() is None:
        made.process.kill()
        made.process.wait()


@pytest.mark.slow
def test_keys_made_rotated_and_revoked_on_every_process(
    gateway: Gateway, store: redis_sync.Redis
) -> None:
    gateway.start()
    assert gateway.statuses("anything") == {200}  # open mode
    gateway.call("POST", "/v1/sources", {"id": "web"}, 201)
    first = gateway.call("POST", "/v1/sources/web/keys", {"kind": "write_key"}, 201)
    time.sleep(1)
    assert gateway.statuses(first["key"]) == {200}
    assert gateway.statuses("anything") == {400}
    assert len(gateway.pids("sources_mode")) == 2  # both processes switched

    rotated_at = time.monotonic()
    second = gateway.call(
        "POST", f"/v1/sources/web/keys/{first['id']}/rotate", {"graceSeconds": 3}, 201
    )
    time.sleep(1)
    assert gateway.statuses(first["key"]) == {200}  # within its grace
    assert gateway.statuses(second["key"]) == {200}
    time.sleep(max(0.0, rotated_at + 3.5 - time.monotonic()))
    assert gateway.statuses(first["key"]) == {400}
    assert gateway.statuses(second["key"]) == {200}

    third = gateway.call("POST", "/v1/sources/web/keys", {"kind": "write_key"}, 201)
    time.sleep(1)
    assert gateway.statuses(third["key"]) == {200}
    gateway.call("DELETE", f"/v1/sources/web/keys/{third['id']}", status=204)
    time.sleep(1)
    assert gateway.statuses(third["key"]) == {400}
    listed = gateway.call("GET", "/v1/sources")

    gateway.stop()
    gateway.start()
    assert gateway.call("GET", "/v1/sources") == listed
    assert gateway.statuses(second["key"]) == {200}
    assert gateway.statuses(first["key"]) == {400}
    assert gateway.statuses(third["key"]) == {400}
    assert gateway.statuses("anything") == {400}

    # The admin API wants its token and is not on the public port.
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
        answer = requests.get(gateway.admin + "/v1/sources", headers=headers, timeout=10)
        assert answer.status_code == 401
    for path in ("/v1/sources", "/metrics"):
        assert requests.get(gateway.public + path, headers=AUTH, timeout=10).status_code == 404
    metrics = requests.get(gateway.admin + "/metrics", headers=AUTH, timeout=10).text
    assert "gateway_messages_accepted_total" in metrics

    # No key in clear: not in Redis, not in the logs, not in the metrics.
    keys = [made["key"] for made in (first, second, third)]
    everything = _dump(store) + metrics + "".join(log.read_text() for log in gateway.logs)
    assert [key for key in keys if key in everything] == []
    assert first["id"] in everything  # the dump did find the records

    # The command line, on the same API.
    cli = ["--admin-url", gateway.admin, "--admin-token", TOKEN]
    assert _cli("sources", "create", "app", *cli).startswith("app  enabled")
    made = json.loads(_cli("sources", "add-key", "app", "--json", *cli))
    assert made["key"].startswith("wk_")
    table = _cli("sources", "list", *cli)
    assert f"{made['id']}  write_key  wk_…{made['key'][-4:]}" in table
    assert made["key"] not in table
    _cli("sources", "revoke-key", "app", made["id"], *cli)
    _cli("sources", "disable", "web", *cli)
    listed = json.loads(_cli("sources", "list", "--json", *cli))
    assert {s["id"]: (s["enabled"], len(s["keys"])) for s in listed["sources"]} == {
        "web": (False, 1),
        "app": (True, 0),
    }
    gateway.stop()


@pytest.mark.slow
def test_the_sources_file_reloads_on_sighup_and_on_change(
    tmp_path: Path, redis_server: RedisProcess, store: redis_sync.Redis
) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(_file("wk_file_aaaa"))
    gateway = Gateway(tmp_path, redis_server.url, "--sources", str(sources))
    gateway.start()
    try:
        assert gateway.statuses("wk_file_aaaa") == {200}

        # SIGHUP alone: the same size and modification time, so the poll sees nothing.
        stamp = sources.stat()
        with sources.open("r+") as out:
            out.write(_file("wk_file_bbbb"))
        os.utime(sources, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        time.sleep(1)
        assert gateway.statuses("wk_file_aaaa") == {200}
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert gateway.statuses("wk_file_bbbb") == {200}
        assert gateway.statuses("wk_file_aaaa") == {400}
        assert len(gateway.pids("sources_reloaded")) == 2

        sources.write_text(_file("wk_file_cccc_longer"))  # a plain change
        time.sleep(1)
        assert gateway.statuses("wk_file_cccc_longer") == {200}
        assert gateway.statuses("wk_file_bbbb") == {400}

        sources.write_text('[[source]]\nid = "web"\nwrite_keys = ["wk_broken"\n')
        time.sleep(1.5)
        assert gateway.statuses("wk_file_cccc_longer") == {200}  # the last good one
        assert gateway.statuses("wk_broken") == {400}
        refused = [e for e in gateway.events() if e.get("event") == "sources_refused"]
        assert len(refused) == 2, refused  # one line a process, not one a poll
        assert "not valid TOML" in refused[0]["message"]
        listed = gateway.call("GET", "/v1/sources")
        assert [s["id"] for s in listed["sources"]] == ["web"]
    finally:
        gateway.stop()


def _cli(*args: str) -> str:
    """`gateway ARGS`' output; it must succeed."""
    run = subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def _file(key: str) -> str:
    return f'[[source]]\nid = "web"\nwrite_keys = ["{key}"]\n'


def _dump(store: redis_sync.Redis) -> str:
    """Every key and value of the server, as text."""
    out = []
    for name in store.scan_iter():
        found = store.type(name)
        kind = found.decode() if isinstance(found, bytes) else found
        if kind == "string":
            value: Any = store.get(name)
        elif kind == "hash":
            value = store.hgetall(name)
        elif kind == "stream":
            value = store.xrange(name)
        elif kind == "set":
            value = store.smembers(name)
        elif kind == "zset":
            value = store.zrange(name, 0, -1)
        else:
            value = store.lrange(name, 0, -1)
        out.append(f"{name!r} {value!r}")
    return "\n".join(out)
