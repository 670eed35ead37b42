"""Hostile clients against a real `gateway serve` process (docs/security.md).

WriteKeys are public: nothing a request without a valid key does may cost unbounded Redis
memory, process memory, log volume or time. Each test starts a gateway (one process, in
sources mode) on the session's Redis, attacks it from 127.0.0.1 (127.0.0.2 as a second
address) and checks what an operator would: `INFO memory`, `/proc/PID/status`, the log,
`/metrics`. Each runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
import resource
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from redis.asyncio import Redis

from gateway.constants import REJECTED_STREAM
from gateway.ops.embedded import RedisProcess, free_port
from gateway.store.rejected import MAXLEN
from tests.helpers.gateway import ADMIN_AUTH, ADMIN_TOKEN
from tests.helpers.serve import start, stop, wait_for

pytestmark = pytest.mark.slow

KEY = "wk_hostile"
SOURCES = f"""
[[source]]
id = "web"
write_keys = ["{KEY}"]
[source.commanders_act]
site_id = 29
source_keys = ["ca_token"]
"""
LONGEST = 30.0
"""Seconds a test waits for the gateway to close a connection (it should take far less)."""
FDS = 4096
"""File descriptors the tests need: a thousand connections, on both ends."""


@dataclass
class Gateway:
    """A running `gateway serve` with one process."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    admin_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> int:
        """The process's resident memory, in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        [kilobytes] = re.findall(r"^VmRSS:\s+(\d+) kB", status, re.M)
        return int(kilobytes) * 1024

    def answers(self) -> dict[str, float]:
        """`gateway_http_requests_total` by status, summed over routes and methods."""
        time.sleep(1.2)  # the counts reach the metrics once a second
        admin = f"http://127.0.0.1:{self.admin_port}/metrics"
        text = requests.get(admin, headers=ADMIN_AUTH, timeout=10).text
        out: dict[str, float] = {}
        for status, value in re.findall(
            r'^gateway_http_requests_total\{[^}]*status="(\d+)"[^}]*\} (\S+)', text, re.M
        ):
            out[status] = out.get(status, 0) + float(value)
        return out


@pytest.fixture(autouse=True)
def more_files() -> Iterator[None]:
    """Room for a thousand connections; the gateway started below inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(FDS, hard) if hard != resource.RLIM_INFINITY else FDS
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


Serve = Callable[..., contextlib.AbstractContextManager["Gateway"]]
"""The `serve` fixture: `with serve(*flags) as gateway:`."""


@pytest.fixture
def serve(redis_server: RedisProcess, redis: Redis, tmp_path: Path) -> Iterator[Serve]:
    """Starts gateways: `with serve(*flags) as gateway:`."""
    (tmp_path / "sources.toml").write_text(SOURCES)

    @contextlib.contextmanager
    def run(*flags: str) -> Iterator[Gateway]:
        port, admin_port = free_port(), free_port()
        log = tmp_path / f"gateway-{port}.log"
        args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        args += ["--admin-port", str(admin_port), "--admin-token", ADMIN_TOKEN]
        args += ["--redis-url", redis_server.url, "--sources", "sources.toml"]
        args += ["--data-dir", "data", "--log-format", "json", *flags]
        process = start(args, log)
        try:
            wait_for("listening on", log, process)
            yield Gateway(process, port, log, admin_port)
        finally:
            if process.poll() is None:
                stop(process)

    return run  # type: ignore[return-value]


async def hold(port: int, head: bytes, body: bytes = b"", host: str = "127.0.0.1") -> float:
    """Send `head` and `body`, then nothing: seconds until the gateway closes the connection."""
    reader, writer = await asyncio.open_connection(host, port)
    began = time.monotonic()
    writer.write(head + body)
    await writer.drain()
    with contextlib.suppress(ConnectionError, TimeoutError):
        async with asyncio.timeout(LONGEST):
            while await reader.read(65536):
                pass
    writer.close()
    return time.monotonic() - began


@contextlib.asynccontextmanager
async def rss_peak(gateway: Gateway) -> AsyncIterator[list[int]]:
    """The gateway's highest RSS while the block runs, sampled every 50 ms: `[peak]`."""
    peak = [gateway.rss()]

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], gateway.rss())
            await asyncio.sleep(0.05)

    task = asyncio.create_task(sample())
    try:
        yield peak
    finally:
        task.cancel()


async def used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def test_an_unauthenticated_commanders_act_flood_stays_small_in_redis(
    serve: Serve, redis: Redis
) -> None:
    """Wrong tokens, 2,500 tiny events a request, from two connections: answered 200 (as
    Commanders Act's documents say), recorded, and Redis grows by a bounded amount."""
    batch = json.dumps({"batch": [{"event_name": "x"}] * 2500}).encode()
    with serve("--address-rate", "0") as gateway:  # the budget is not what is tested here
        before = await used_memory(redis)

        def flood() -> int:
            sent = 0
            with requests.Session() as session:
                until = time.monotonic() + 8
                while time.monotonic() < until:
                    answer = session.post(
                        f"{gateway.url}/events/batch?tc_s=1&token=nope", data=batch, timeout=30
                    )
                    assert answer.status_code == 200
                    sent += 2500
            return sent

        sent = sum(await asyncio.gather(*(asyncio.to_thread(flood) for _ in range(2))))
        grown = await used_memory(redis) - before
    assert sent >= 20_000  # a flood, not a trickle
    assert grown < 20 * 1024**2, f"{sent} refused events grew Redis by {grown} bytes"
    assert await redis.keys("gateway:seen:*") == []
    assert await redis.xlen(REJECTED_STREAM) <= MAXLEN + 2500


async def test_stalled_gzip_uploads_cost_bounded_memory_and_are_closed_in_time(
    serve: Serve,
) -> None:
    """1,000 connections each send 697 bytes of gzip that inflate to about 500 KB, then
    stop. Bodies may hold 32 MB a process: past it the gateway answers 503; each stalled
    body is given up (408) once its average falls below the minimum rate."""
    whole = gzip.compress(b'{"batch": [' + b" " * 490_000, 9)
    sent = whole[:697]
    head = (
        f"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(whole) + 10_000}\r\n"
        f"Authorization: Basic {_basic(KEY)}\r\n\r\n"
    ).encode()
    with serve("--body-timeout", "10", "--address-rate", "0") as gateway:
        async with rss_peak(gateway) as peak:
            before = gateway.rss()
            durations = await asyncio.gather(*(hold(gateway.port, head, sent) for _ in range(1000)))
        answers = await asyncio.to_thread(gateway.answers)
        assert await asyncio.to_thread(_latency, gateway) < 1  # still serving
    grown = peak[0] - before
    assert grown < 100 * 1024**2, f"RSS grew by {grown / 1024**2:.0f} MB"
    assert max(durations) < 10 + 1, f"the slowest was closed after {max(durations):.1f} s"
    assert answers.get("408", 0) + answers.get("503", 0) == 1000, answers


async def test_slowloris_connections_are_closed_and_others_keep_their_latency(
    serve: Serve,
) -> None:
    """500 connections send half a request's headers and stop: each is closed (408) once
    the header time limit passes; meanwhile a normal request is answered as quickly."""
    with serve("--header-timeout", "3", "--address-rate", "0") as gateway:
        quiet = _latency(gateway)
        attack = [
            asyncio.create_task(hold(gateway.port, b"POST /v1/track HTTP/1.1\r\nHost: x\r\nX-A: "))
            for _ in range(500)
        ]
        await asyncio.sleep(1)
        loaded = await asyncio.to_thread(_latency, gateway)
        durations = await asyncio.gather(*attack)
        answers = await asyncio.to_thread(gateway.answers)
    assert max(durations) < 3 + 1.5, f"the slowest was closed after {max(durations):.1f} s"
    assert min(durations) >= 3 - 0.2
    assert loaded < max(0.25, 5 * quiet), (quiet, loaded)
    assert answers.get("408") == 500, answers


async def test_aborted_uploads_are_no_server_error_and_log_no_traceback(
    serve: Serve,
) -> None:
    """1,000 clients send part of a body and hang up: counted as 499 (the client went
    away), never a 5xx, and at most a debug line each without a traceback."""
    head = (
        "POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: 5000\r\nAuthorization: Basic {_basic(KEY)}\r\n\r\n"
    ).encode()

    async def abort() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(head + b'{"userId": "u", "event": "')
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.transport.abort()  # a reset, as a browser tab closed mid-upload

    with serve("--log-level", "debug", "--address-rate", "0") as gateway:
        for _ in range(10):
            await asyncio.gather(*(abort() for _ in range(100)))
        answers = await asyncio.to_thread(gateway.answers)
        log = gateway.log.read_text()
    assert not [status for status in answers if status.startswith("5")], answers
    assert answers.get("499", 0) >= 900, answers  # a few may not have reached the handler
    assert "Traceback" not in log
    gone = [line for line in log.splitlines() if '"client_gone"' in line]
    assert all(json.loads(line)["level"] == "debug" for line in gone)


async def test_one_address_over_its_budget_is_limited_and_another_is_not(
    serve: Serve,
) -> None:
    with serve("--address-rate", "20", "--address-burst", "20") as gateway:
        statuses = await asyncio.to_thread(_burst, "127.0.0.1", gateway.port, 60)
        other = await asyncio.to_thread(_burst, "127.0.0.2", gateway.port, 10)
    assert statuses.count(429) >= 30, statuses
    assert statuses[:20] == [200] * 20
    assert other == [200] * 10


async def test_a_wrong_basic_key_is_refused_before_the_body(
    serve: Serve,
) -> None:
    """The client is answered at once: the gateway neither waits for nor holds the body."""
    head = (
        "POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 400000\r\n"
        f"Authorization: Basic {_basic('wrong')}\r\n\r\n"
    ).encode()
    with serve() as gateway:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(head)
        answer = await asyncio.wait_for(reader.read(4096), 2)
        writer.close()
        await writer.wait_closed()  # before the gateway stops: it would wait for this one
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b"Invalid or missing writekey" in answer


async def test_raw_request_lines_at_debug_hold_no_key_and_forge_no_line(
    serve: Serve,
) -> None:
    """A malformed request line is logged at debug; its writeKey, token and Basic
    credentials are not, in either format; a `%0A` in a tc_s makes no line of its own."""
    secret = "wk_SECRET_in_the_line"
    garbage = (
        f"GET\x01 /v1/t?writeKey={secret}&token={secret} HTTP/1.1\r\n"
        f"Authorization: Basic {_basic(secret)}\r\n\r\n"
    ).encode()
    for log_format in ("json", "text"):
        with serve("--log-level", "debug", "--log-format", log_format) as gateway:
            await hold(gateway.port, garbage)
            forged = f"{gateway.url}/events?tc_s=1%0AFORGED&token={secret}"
            await asyncio.to_thread(requests.post, forged, json={"event_name": "x"}, timeout=5)
            await asyncio.sleep(0.3)
            log = gateway.log.read_text()
        assert "Malformed HTTP request" in log
        assert secret not in log
        assert _basic(secret) not in log
        assert not [line for line in log.splitlines() if line.startswith("FORGED")]


def _basic(key: str) -> str:
    import base64

    return base64.b64encode(f"{key}:".encode()).decode()


def _latency(gateway: Gateway) -> float:
    """The median seconds of a few `/v1/track` requests on fresh connections."""
    times = []
    for _ in range(9):
        began = time.monotonic()
        answer = requests.post(
            f"{gateway.url}/v1/track",
            json={"userId": "u", "event": "E"},
            auth=(KEY, ""),
            timeout=10,
        )
        assert answer.status_code == 200
        times.append(time.monotonic() - began)
    return sorted(times)[len(times) // 2]


def _burst(address: str, port: int, count: int) -> list[int]:
    """Statuses of `count` quick requests to `/health` from the local `address`."""
    import http.client

    statuses = []
    connection = http.client.HTTPConnection("127.0.0.1", port, source_address=(address, 0))
    for _ in range(count):
        connection.request("GET", "/health")
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
    connection.close()
    return statuses
