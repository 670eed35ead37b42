"""`GET /metrics` as an operator reads it: the counts agree with what was sent and landed."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.constants import events_key
from gateway.errors import (
    ApiError,
    Code,
    bad_request,
    invalid,
    invalid_write_key,
    too_large,
    unavailable,
)
from gateway.http.app_keys import COMMITTER
from gateway.ingest.sources import Source, Sources
from gateway.ops.embedded import RedisProcess, free_port
from gateway.ops.tally import Tally
from gateway.worker import metrics as worker_metrics
from gateway.worker.consumer import Consumer
from gateway.worker.dispatch import Dispatcher
from gateway.worker.options import ConsumerOptions
from tests.helpers import processes
from tests.helpers.destinations import ListDestination
from tests.helpers.gateway import ADMIN_TOKEN, MakeClient, admin_of
from tests.helpers.metrics import Samples, parse, total, value
from tests.helpers.processes import ROOT

KEY = "wk_metrics_test"
SOURCES = Sources([Source(id="web", write_keys=[KEY])])
AUTH = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
TRACK = {"userId": "u1", "event": "Order Completed"}
STREAM = events_key(0)


async def scrape(client: TestClient[Any, Any]) -> Samples:
    """The metrics of `client`'s gateway, from its admin listener."""
    response = await admin_of(client).get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(await response.text())


Request = tuple[str, str, bytes | None, dict[str, str], int]
"""What the load sends: method, path, body or None, headers, expected status."""


def load() -> list[Request]:
    good = json.dumps(TRACK).encode()
    batch = json.dumps(
        {"batch": [{**TRACK, "type": "track"}, {**TRACK, "type": "track"}, {"type": "track"}]}
    ).encode()
    big = json.dumps({**TRACK, "properties": {"pad": "x" * 40_000}}).encode()
    wrong_key = {"Authorization": "Basic " + base64.b64encode(b"wk_unknown:").decode()}
    requests: list[Request] = [("POST", "/v1/track", good, {}, 200)] * 150
    requests += [("POST", "/v1/batch", batch, {}, 207)] * 30  # 2 accepted, 1 without userId
    requests += [("POST", "/v1/track", b'{"userId": ', {}, 400)] * 30
    requests += [("POST", "/v1/track", good, wrong_key, 400)] * 20
    requests += [("POST", "/v1/track", big, {}, 413)] * 10
    requests += [("GET", "/no/such/route", None, {}, 404)] * 10
    return requests


def expect(samples: Samples, landed: int) -> None:
    """The counts `load()` must leave, and `landed` entries in the stream."""
    requests = "gateway_http_requests_total"
    assert value(samples, requests, route="/v1/track", method="POST", status="200") == 150
    assert value(samples, requests, route="/v1/batch", method="POST", status="207") == 30
    assert value(samples, requests, route="/v1/track", method="POST", status="400") == 50
    assert value(samples, requests, route="/v1/track", method="POST", status="413") == 10
    assert value(samples, requests, route="other", method="GET", status="404") == 10
    assert value(samples, "gateway_messages_accepted_total", to="redis") == 210 == landed
    assert value(samples, "gateway_messages_accepted_total", to="spool") == 0
    assert value(samples, "gateway_messages_duplicate_total") == 0
    rejected = "gateway_messages_rejected_total"
    assert value(samples, rejected, reason="invalid") == 30
    assert value(samples, rejected, reason="malformed") == 30
    assert value(samples, rejected, reason="write_key") == 20
    assert value(samples, rejected, reason="too_large") == 10
    assert total(samples, rejected) == 90
    # Every request that handed messages to the committer waited for them once.
    assert value(samples, "gateway_enqueue_seconds_count") == 180
    assert value(samples, "gateway_enqueue_seconds_bucket", le="+Inf") == 180
    assert value(samples, "gateway_flush_entries_sum") == 210
    assert total(samples, "gateway_redis_errors_total") == 0
    assert value(samples, "gateway_redis_up") == 1
    assert value(samples, "gateway_stream_length", stream=STREAM) == landed


async def send_all(
    session: aiohttp.ClientSession, base: str, requests: list[Request]
) -> list[tuple[int, str]]:
    async def one(
        method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str]:
        headers = {"Content-Type": "application/json", "Authorization": AUTH, **headers}
        async with session.request(method, base + path, data=body, headers=headers) as response:
            await response.read()
            return response.status, response.headers["X-Request-Id"]

    return await asyncio.gather(*(one(m, p, b, h) for m, p, b, h, _ in requests))


async def test_a_scrape_under_load_agrees_with_what_was_sent_and_landed(
    make_client: MakeClient, redis: Redis
) -> None:
    client = await make_client(SOURCES)
    requests = load()
    base = str(client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        answers = await send_all(session, base, requests)
    assert [status for status, _ in answers] == [r[-1] for r in requests]
    assert len({rid for _, rid in answers}) == len(requests)  # every answer has its own id
    samples = await scrape(client)
    expect(samples, landed=await redis.xlen(STREAM))
    assert value(samples, "gateway_processes") == 1
    again = await scrape(client)  # counts do not move by being read
    assert total(again, "gateway_http_requests_total") == total(
        samples, "gateway_http_requests_total"
    )
    assert total_scrapes(again) == 0  # the admin listener's calls are not public requests


async def test_a_client_request_id_is_echoed_and_a_bad_one_replaced(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post("/v1/track", json=TRACK, headers={"X-Request-Id": "req-42.a"})
    assert response.headers["X-Request-Id"] == "req-42.a"
    for bad in ("x" * 129, "two words", "tab\there"):
        response = await client.post("/v1/track", json=TRACK, headers={"X-Request-Id": bad})
        assert response.headers["X-Request-Id"] not in (bad, "")
    response = await client.post("/v1/track", data=b"{", headers={"X-Request-Id": "err-1"})
    assert (response.status, response.headers["X-Request-Id"]) == (400, "err-1")


async def test_every_rejection_reason(client: TestClient[Any, Any]) -> None:
    deep: dict[str, Any] = {}
    for _ in range(70):
        deep = {"n": deep}
    sent = [
        await client.post("/v1/track", data=b"x", headers={"Content-Encoding": "br"}),
        await client.post("/v1/track", json={**TRACK, "properties": deep}),
        await client.post(
            "/v1/track", data=b"\x1f\x8b not gzip", headers={"Content-Encoding": "gzip"}
        ),
        await client.post("/v1/track", json={"event": "no user"}),
        await client.post("/v1/batch", json={"batch": [{**TRACK, "type": "nope"}]}),
        # Intilery answers its refusals itself; they count all the same.
        await client.post("/track/shop/acc1/brand/v1/track", json=TRACK),  # no auth-token
    ]
    assert [r.status for r in sent] == [415, 400, 400, 400, 400, 403]
    samples = await scrape(client)
    rejected = "gateway_messages_rejected_total"
    assert value(samples, rejected, reason="encoding") == 1
    assert value(samples, rejected, reason="too_deep") == 1
    assert value(samples, rejected, reason="malformed") == 1
    assert value(samples, rejected, reason="invalid") == 2  # the batch's one item: a 400
    assert value(samples, rejected, reason="auth") == 1
    assert total(samples, rejected) == 6


async def test_spooling_is_seen_in_the_metrics(make_client: MakeClient) -> None:
    # Redis is not there: the first flush fails, every message goes to the spool.
    client = await make_client(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout=0.3)
    for _ in range(5):
        assert (await client.post("/v1/track", json=TRACK)).status == 200
    samples = await scrape(client)
    assert value(samples, "gateway_messages_accepted_total", to="spool") == 5
    assert value(samples, "gateway_messages_accepted_total", to="redis") == 0
    assert value(samples, "gateway_redis_errors_total", kind="connection") == 1
    assert value(samples, "gateway_redis_up") == 0
    slot = client.app[COMMITTER].spool.directory.name
    assert value(samples, "gateway_spool_segments", slot=slot) == 1
    assert value(samples, "gateway_spool_bytes", slot=slot) == client.app[COMMITTER].spool.bytes
    assert total(samples, "gateway_spool_bytes") > 0


async def test_a_full_spool_counts_the_refused_messages(make_client: MakeClient) -> None:
    client = await make_client(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout=0.3, spool_max_bytes=1
    )
    batch = {"batch": [{**TRACK, "type": "track"}] * 3}
    assert (await client.post("/v1/batch", json=batch)).status == 503
    samples = await scrape(client)
    assert value(samples, "gateway_messages_rejected_total", reason="unavailable") == 3
    assert (
        value(
            samples, "gateway_http_requests_total", route="/v1/batch", method="POST", status="503"
        )
        == 1
    )


async def test_worker_counts_and_group_lag(make_client: MakeClient, redis: Redis) -> None:
    client = await make_client()
    for n in range(6):
        refused = {"All": False, "refusing": True} if n < 2 else {"refusing": False}
        message = {**TRACK, "messageId": f"m{n}", "integrations": refused}
        assert (await client.post("/v1/track", json=message)).status == 200
    # The group exists and nothing was read yet: all six are lag.
    await redis.xgroup_create(STREAM, "g", id="0")
    samples = await scrape(client)
    assert value(samples, "gateway_group_lag", group="g", stream=STREAM) == 6
    assert value(samples, "gateway_group_consumers", group="g", stream=STREAM) == 0

    accepting = ListDestination("accepting")
    refusing = ListDestination("refusing", failing=True, retry=False)
    options = ConsumerOptions("g", "c1", (STREAM,), block=0.05, reclaim_idle=0.05, burst=True)
    consumer = Consumer(redis, options, Dispatcher([accepting, refusing]))
    await asyncio.wait_for(consumer.run(asyncio.Event()), 20)

    worker = TestClient(
        aiohttp.test_utils.TestServer(worker_metrics.app(consumer.stats, "g", redis, [STREAM]))
    )
    await worker.start_server()
    try:
        response = await worker.get("/metrics")
        seen = parse(await response.text())
    finally:
        await worker.close()
    # Four reach only `accepting`; two reach only `refusing`, which refuses for good.
    assert value(seen, "gateway_worker_delivered_total", group="g") == 4
    assert value(seen, "gateway_worker_dead_lettered_total", group="g") == 2
    assert value(seen, "gateway_worker_retried_total", group="g") == 0
    assert value(seen, "gateway_group_lag", group="g", stream=STREAM) == 0
    assert value(seen, "gateway_group_pending", group="g", stream=STREAM) == 0
    assert value(seen, "gateway_dead_letters", group="g") == 2
    samples = await scrape(client)  # the gateway reads the same from Redis
    assert value(samples, "gateway_group_lag", group="g", stream=STREAM) == 0
    assert value(samples, "gateway_dead_letters", group="g") == 2


async def test_worker_retries_are_counted(redis: Redis) -> None:
    await redis.xadd(STREAM, {"data": json.dumps({**TRACK, "messageId": "r1"}), "source": "web"})
    flaky = ListDestination("flaky", fail_times=2)
    options = ConsumerOptions(
        "g", "c1", (STREAM,), block=0.05, reclaim_idle=0.05, max_attempts=5, burst=True
    )
    consumer = Consumer(redis, options, Dispatcher([flaky]))
    await asyncio.wait_for(consumer.run(asyncio.Event()), 20)
    collected = {
        f.name: f.samples[0].value
        for f in worker_metrics.StatsCollector(consumer.stats, "g").collect()
    }
    assert collected["gateway_worker_retried"] == 2
    assert collected["gateway_worker_delivered"] == 1
    assert collected["gateway_worker_dead_lettered"] == 0


# `gateway serve --workers 2`: two processes, one sum.


def _start(args: list[str], log: Path, temp: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "PROMETHEUS_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["TMPDIR"] = str(temp)  # where the supervisor makes its metrics directory
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", *args], stdout=out, stderr=subprocess.STDOUT, env=env
        )


def _listening_pids(log: Path) -> list[int]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [line["pid"] for line in lines if line.get("event") == "listening"]


def _wait(condition: Callable[[], bool], what: str, log: Path, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {limit}s:\n{log.read_text()}")
        time.sleep(0.1)


@pytest.fixture
def two_processes(
    tmp_path: Path, redis_server: RedisProcess
) -> Iterator[tuple[str, str, Path, subprocess.Popen[bytes]]]:
    port, admin = free_port(), free_port()
    (tmp_path / "tmp").mkdir()
    log = tmp_path / "gateway.log"
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[[source]]\nid = "web"\nwrite_keys = ["{KEY}"]\n')
    process = _start(
        ["serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
         "--redis-url", redis_server.url, "--sources", str(sources),
         "--data-dir", str(tmp_path / "data"), "--log-format", "json",
         "--admin-port", str(admin), "--admin-token", ADMIN_TOKEN],
        log,
        tmp_path / "tmp",
    )  # fmt: skip
    try:
        _wait(lambda: len(_listening_pids(log)) >= 2, "two processes listening", log)
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}", log, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


async def _scrape_url(session: aiohttp.ClientSession, base: str, token: str = "") -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.get(base + "/metrics", headers=headers) as response:
        return parse(await response.text())


@pytest.mark.slow
async def test_metrics_of_two_processes_add_up(
    two_processes: tuple[str, str, Path, subprocess.Popen[bytes]], redis: Redis
) -> None:
    base, admin, log, supervisor = two_processes
    requests = load()
    # A connection per request: the kernel spreads them over both processes (SO_REUSEPORT).
    connector = aiohttp.TCPConnector(force_close=True, limit=50)
    async with aiohttp.ClientSession(connector=connector) as session:
        answers = await send_all(session, base, requests)
        assert [status for status, _ in answers] == [r[-1] for r in requests]

        # The other process pushes its counts within a second: wait for the sum, then check
        # every count is exact (and stays so: it cannot overshoot).
        async def settled() -> Samples:
            for _ in range(100):
                samples = await _scrape_url(session, admin, ADMIN_TOKEN)
                served = total(samples, "gateway_http_requests_total") - total_scrapes(samples)
                if served >= len(requests):
                    return samples
                await asyncio.sleep(0.1)
            pytest.fail(f"counts never added up:\n{log.read_text()}")

        samples = await settled()
        expect(samples, landed=await redis.xlen(STREAM))
        assert value(samples, "gateway_processes") == 2
        pids = _listening_pids(log)
        # Kill one process: the supervisor replaces it; its counts stay in the sum.
        os.kill(pids[0], signal.SIGKILL)
        _wait(lambda: len(_listening_pids(log)) >= 3, "a replacement", log)
        after = await _scrape_url(session, admin, ADMIN_TOKEN)
        assert value(after, "gateway_processes") == 2  # the dead one's gauge is gone
        expect(after, landed=await redis.xlen(STREAM))
    [directory] = (log.parent / "tmp").glob("gateway-metrics-*")
    assert len(list(directory.glob("counter_*.db"))) == 3  # the dead process's stay
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(30) == 0
    assert not directory.exists()  # the supervisor removes what it made


def total_scrapes(samples: Samples) -> float:
    return sum(
        v
        for (n, labels), v in samples.items()
        if n == "gateway_http_requests_total" and ("route", "/metrics") in labels
    )


@pytest.mark.slow
async def test_a_running_worker_serves_its_metrics(
    redis: Redis, redis_server: RedisProcess, tmp_path: Path
) -> None:
    port = free_port()
    process = await processes.start(
        "worker", "--redis-url", redis_server.url, "--group", "g", "--destination", "file",
        "--path", str(tmp_path / "out"), "--block", "0.1", "--metrics-port", str(port),
        "--metrics-host", "127.0.0.1", "--log-format", "json",
    )  # fmt: skip
    try:
        line = await processes.wait_for_line(process, "metrics on")
        assert json.loads(line.splitlines()[-1])["event"] == "metrics_listening"
        for n in range(3):
            await redis.xadd(STREAM, {"data": json.dumps({**TRACK, "messageId": f"w{n}"})})
        async with aiohttp.ClientSession() as session:
            for _ in range(200):  # until the worker has delivered them (bounded)
                samples = await _scrape_url(session, f"http://127.0.0.1:{port}")
                if value(samples, "gateway_worker_delivered_total", group="g") >= 3:
                    break
                await asyncio.sleep(0.05)
        assert value(samples, "gateway_worker_delivered_total", group="g") == 3
        assert value(samples, "gateway_group_lag", group="g", stream=STREAM) == 0
        assert value(samples, "gateway_group_consumers", group="g", stream=STREAM) == 1
    finally:
        process.terminate()
        await processes.finish(process)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (invalid_write_key(), "write_key"),
        (bad_request("Invalid gzip body", "ends early"), "malformed"),
        (invalid("Invalid message", "userId or anonymousId is required"), "invalid"),
        (bad_request("Message nested too deeply", code=Code.TOO_DEEP), "too_deep"),
        (ApiError(400, "Something new"), "invalid"),
        # The code is where the error was made, whatever its text says.
        (bad_request("Invalid message"), "malformed"),
        (invalid("Invalid JSON"), "invalid"),
        (ApiError(403, "Not authorised"), "auth"),
        (too_large("Message is larger than 32768 bytes"), "too_large"),
        (ApiError(413, "Malformed HTTP request", code=Code.MALFORMED), "too_large"),
        (ApiError(415, "Unsupported Content-Encoding 'br'"), "encoding"),
        (ApiError(429, "Rate limited"), "rate_limited"),
        (unavailable("Cannot store messages right now", 1), "unavailable"),
    ],
)
def test_reasons_are_a_fixed_set_never_the_text(error: ApiError, reason: str) -> None:
    assert error.code == reason
    tally = Tally()
    # A 503 is counted by the committer, with the messages it could not store.
    assert tally.refused(error) is (reason != "unavailable")
    assert tally.rejected == ({reason: 1} if reason != "unavailable" else {})
