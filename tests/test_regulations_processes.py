"""Regulations with real processes (docs/regulations.md): `gateway serve --workers 2` takes
the seed's Intilery batch, analytics-python, a pixel and a Commanders Act event for one
user, and drops them all once the user is suppressed (checked with XRANGE over every
partition); `gateway worker` deletes a user's messages from the streams, a `file`
archive and an `http` destination, and finishes the job after a SIGKILL."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis as redis_sync
import requests

from gateway.constants import all_events_keys
from gateway.ops.embedded import RedisProcess, free_port
from tests.helpers.destinations import Collector
from tests.helpers.gateway import ADMIN_AUTH, ADMIN_TOKEN
from tests.helpers.missing import missing
from tests.helpers.processes import ROOT
from tests.helpers.serve import start, stop, wait_for

try:
    from segment.analytics import client as segment
except ImportError:
    missing("analytics-python is not installed: pip install -e '.[test]'")

pytestmark = pytest.mark.slow

PARTITIONS = 4
USER = "019mr8mf4r"
"""The first user of the seed's Intilery batch (shared/seeds/004_*)."""
OTHER = "971mj8mk7p"
"""The second."""
SEED_BATCH: dict[str, Any] = {
    "batch": [
        {
            "event": "identify",
            "userId": USER,
            "traits": {"email": "jake@yahoo.com", "name": "Jake Peterson", "age": 26},
            "timestamp": "2012-12-02T00:30:08.276Z",
        },
        {
            "event": "Song Played",
            "userId": USER,
            "properties": {"name": "Fallin for You", "artist": "Dierks Bentley"},
            "timestamp": "2012-12-02T00:30:12.984Z",
        },
        {
            "event": "identify",
            "userId": OTHER,
            "traits": {"email": "cindy@example.com", "name": "Cindy Gonzalez", "age": 23},
            "timestamp": "2015-2-02T00:30:08.276Z",
        },
        {
            "event": "Song Played",
            "userId": OTHER,
            "properties": {"name": "Get Right", "artist": "Jennifer Lopez"},
            "timestamp": "2015-2-02T00:30:12.984Z",
        },
    ],
    "context": {"device": {"type": "phone", "name": "Apple iPhone 6"}},
}
PER_USER = 6
"""Messages each user sends in `send_everything`: 2 Intilery, 2 SDK, a pixel, a CA event."""


class Served:
    """`gateway serve --workers 2` in open mode, and a client of its Redis."""

    def __init__(self, tmp_path: Path, redis_url: str) -> None:
        self.public = f"http://127.0.0.1:{free_port()}"
        self.admin = f"http://127.0.0.1:{free_port()}"
        args = ["serve", "--workers", "2", "--host", "127.0.0.1", "--redis-url", redis_url]
        args += ["--port", self.public.rsplit(":", 1)[1], "--partitions", str(PARTITIONS)]
        args += ["--admin-port", self.admin.rsplit(":", 1)[1], "--admin-token", ADMIN_TOKEN]
        args += ["--data-dir", str(tmp_path / "data"), "--address-rate", "0"]
        self.log = tmp_path / "gateway.log"
        self.process = start(args, self.log)
        wait_for("admin", self.log, self.process)
        self.redis = redis_sync.Redis.from_url(redis_url)
        deadline = time.monotonic() + 30
        while not self._ready():
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            return requests.get(self.public + "/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def regulate(self, kind: str, *ids: str) -> str:
        body = {"regulationType": kind, "subjectType": "USER_ID", "subjectIds": list(ids)}
        answer = requests.post(self.admin + "/v1/regulations", json=body, headers=ADMIN_AUTH)
        assert answer.status_code == 200, answer.text
        time.sleep(1.0)  # every process enforces it within a second
        return str(answer.json()["data"]["regulateId"])

    def regulation(self, regulation_id: str) -> dict[str, Any]:
        answer = requests.get(f"{self.admin}/v1/regulations/{regulation_id}", headers=ADMIN_AUTH)
        return dict(answer.json()["data"]["regulation"])

    def stored(self) -> list[dict[str, Any]]:
        """Every message in every partition (XRANGE)."""
        found = []
        for key in all_events_keys(PARTITIONS):
            entries = cast(list[tuple[bytes, dict[bytes, bytes]]], self.redis.xrange(key))
            found += [json.loads(f[b"data"]) for _, f in entries]
        return found

    def users(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for message in self.stored():
            counts[message["userId"]] = counts.get(message["userId"], 0) + 1
        return counts

    def empty(self) -> None:
        self.redis.delete(*all_events_keys(PARTITIONS))

    def send_everything(self) -> None:
        """The seed's Intilery batch (both users), then for each user analytics-python's
        identify and track, a pixel and a Commanders Act event: every answer a success."""
        answer = requests.post(
            self.public + "/track/acme/shop/SHOP/v1/batch",
            json=SEED_BATCH,
            headers={"auth-token": "tok_any"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["success"] is True
        errors: list[str] = []
        sdk = segment.Client(
            "wk_any",
            host=self.public,
            sync_mode=True,
            max_retries=0,
            on_error=lambda error, _batch: errors.append(str(error)),
        )
        for user in (USER, OTHER):
            sdk.identify(user, {"plan": "pro"})
            sdk.track(user, "Order Completed", {"revenue": 42.5})
            data = base64.b64encode(json.dumps({"userId": user, "event": "Opened"}).encode())
            pixel = requests.get(self.public + "/v1/pixel/track", params={"data": data.decode()})
            assert pixel.status_code == 200
            assert "X-Pixel-Rejected" not in pixel.headers
            event: dict[str, Any] = {"event_name": "purchase", "user": {"id": user}}
            commanders = requests.post(self.public + "/events", json=event)
            assert commanders.status_code == 200, commanders.text
        sdk.flush()
        assert errors == []

    def close(self) -> None:
        assert stop(self.process) == 0, self.log.read_text()[-3000:]
        self.redis.close()


@pytest.fixture
def served(tmp_path: Path, redis_server: RedisProcess) -> Iterator[Served]:
    redis_sync.Redis.from_url(redis_server.url).flushall()
    gateway = Served(tmp_path, redis_server.url)
    yield gateway
    gateway.close()


def test_suppressed_on_every_route_of_every_process_then_unsuppressed(served: Served) -> None:
    served.send_everything()
    assert served.users() == {USER: PER_USER, OTHER: PER_USER}
    served.empty()

    served.regulate("SUPPRESS_ONLY", USER)
    for _ in range(3):  # new connections each time: both processes answer some
        served.send_everything()
    assert served.users() == {OTHER: 3 * PER_USER}
    counted = f'gateway_messages_dropped_total{{reason="suppressed"}} {3 * PER_USER}.0'
    deadline = time.monotonic() + 5  # each process pushes its counts once a second
    while counted not in requests.get(served.admin + "/metrics", headers=ADMIN_AUTH).text:
        assert time.monotonic() < deadline
        time.sleep(0.2)

    served.empty()
    served.regulate("UNSUPPRESS", USER)
    served.send_everything()
    assert served.users() == {USER: PER_USER, OTHER: PER_USER}


def test_no_track_with_real_processes(served: Served) -> None:
    served.regulate("NO_TRACK", USER)
    served.send_everything()
    mine = [m for m in served.stored() if m["userId"] == USER]
    # Intilery's identify and the SDK's (server-side) land; every track is dropped.
    assert sorted(m["type"] for m in mine) == ["identify", "identify"]
    browser = requests.post(
        served.public + "/v1/identify",
        json={"userId": USER, "traits": {"from": "browser"}},
        headers={"Origin": "https://shop.example"},
    )
    assert browser.status_code == 200
    assert len([m for m in served.stored() if m["userId"] == USER]) == 2

    served.empty()
    served.regulate("TRACK", USER)
    served.send_everything()
    assert served.users()[USER] == PER_USER


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    found = Collector()
    yield found
    await found.close()


def _worker(tmp_path: Path, redis_url: str, config: Path, run: int) -> subprocess.Popen[bytes]:
    args = ["worker", "--redis-url", redis_url, "--partitions", str(PARTITIONS)]
    args += ["--group", "g", "--consumer", "w1", "--config", str(config), "--block", "0.2"]
    return start(args, tmp_path / f"worker-{run}.log")


async def test_suppress_with_delete_survives_a_sigkill(
    tmp_path: Path, redis_server: RedisProcess, collector: Collector
) -> None:
    redis_sync.Redis.from_url(redis_server.url).flushall()
    served = await asyncio.to_thread(Served, tmp_path, redis_server.url)
    base = await collector.start()
    config = tmp_path / "destinations.toml"
    config.write_text(
        f'[[destination]]\nname = "archive"\nkind = "file"\npath = "{tmp_path / "archive"}"\n\n'
        f'[[destination]]\nname = "crm"\nkind = "http"\nurl = "{base}/batch"\n'
        f'delete_url = "{base}/gdpr"\nretries = 0\n'
    )
    worker = _worker(tmp_path, redis_server.url, config, 0)
    try:
        await asyncio.to_thread(served.send_everything)
        archive = tmp_path / "archive" / "events-000001.ndjson"
        await _until(lambda: archive.exists() and len(_archived(archive)) == 2 * PER_USER)
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 20) == 0
        await asyncio.to_thread(served.send_everything)  # not delivered: no worker runs
        assert (await asyncio.to_thread(served.users)) == {USER: 12, OTHER: 12}

        collector.hold_deletions = asyncio.Event()  # the deletion call hangs: mid-job
        worker = _worker(tmp_path, redis_server.url, config, 1)
        regulation = await asyncio.to_thread(served.regulate, "SUPPRESS_WITH_DELETE", USER)
        await asyncio.wait_for(collector.deletion_arrived.wait(), 30)
        worker.send_signal(signal.SIGKILL)
        await asyncio.to_thread(worker.wait, 20)
        found = await asyncio.to_thread(served.regulation, regulation)
        assert found["overallStatus"] == "RUNNING"
        assert {s["name"]: s["status"] for s in found["stores"]}["destination:crm"] == "RUNNING"
        assert collector.deletions == []
        collector.hold_deletions.set()
        collector.hold_deletions = None

        worker = _worker(tmp_path, redis_server.url, config, 2)  # the same consumer name
        await _until(lambda: served.regulation(regulation)["overallStatus"] == "FINISHED")
        found = await asyncio.to_thread(served.regulation, regulation)
        assert {s["name"]: s["status"] for s in found["stores"]} == {
            "suppression": "FINISHED",
            "streams": "FINISHED",
            "destination:archive": "FINISHED",
            "destination:crm": "FINISHED",
        }
        assert USER not in await asyncio.to_thread(served.users)
        assert {m["userId"] for m in _archived(archive)} == {OTHER}
        assert [d["subjectIds"] for d in collector.deletions][-1] == [USER]
        assert "regulation_done" in (tmp_path / "worker-2.log").read_text()

        # ACCESS through the CLI: the zip holds exactly the other user's messages.
        made = await asyncio.to_thread(_cli, served, "create", "ACCESS", OTHER)
        access = made.strip()
        await _until(lambda: served.regulation(access)["overallStatus"] == "FINISHED")
        target = tmp_path / "access.zip"
        await asyncio.to_thread(_cli, served, "download", access, "-o", str(target))
        with zipfile.ZipFile(target) as files:
            held = {n: files.read(n).decode().splitlines() for n in files.namelist()}
        assert sorted(held) == ["archive.ndjson", "dead-letters.ndjson", "streams.ndjson"]
        stored = [m for m in await asyncio.to_thread(served.stored) if m["userId"] == OTHER]
        streams = [json.loads(line) for line in held["streams.ndjson"]]
        assert sorted(m["messageId"] for m in streams) == sorted(m["messageId"] for m in stored)
        archived = [json.loads(line) for line in held["archive.ndjson"]]
        assert archived == [m for m in _archived(archive) if m["userId"] == OTHER]
        assert len(streams) == 2 * PER_USER
        assert len(archived) == 2 * PER_USER  # the restarted worker delivered the rest
        assert held["dead-letters.ndjson"] == []
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 20)
        await asyncio.to_thread(served.close)


def _cli(served: Served, *args: str) -> str:
    """`gateway regulations ARGS` against the served gateway's admin API; its output."""
    command = [sys.executable, "-m", "gateway", "regulations", *args]
    command += ["--admin-url", served.admin, "--admin-token", ADMIN_TOKEN]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert run.returncode == 0, run.stderr
    return run.stdout


def _archived(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def _until(check: Any) -> None:
    deadline = time.monotonic() + 30
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.1)
