"""Fault tests with real processes: Redis and the gateway are SIGKILLed under load.

A load of unique messages runs against a gateway subprocess, as a careful client does:
it resends a message (same messageId) until it gets a 200, and never after. Faults are
injected when a share of the messages has been acknowledged. At the end every message
got exactly one 200, and the streams hold every messageId exactly once: nothing
acknowledged was lost, nothing was duplicated, no garbage was replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import msgspec
import pytest
from redis.asyncio import Redis

from gateway.constants import events_key
from gateway.ops.embedded import RedisProcess, free_port
from gateway.store.entry import Entry
from gateway.store.spool_format import frame
from tests.helpers.processes import ROOT
from tests.helpers.streams import read_stream

pytestmark = pytest.mark.slow

MESSAGES = 3000
CONCURRENCY = 24
PARTITIONS = 2
ESTABLISHED, LISTEN = "01", "0A"
"""TCP states as /proc/net/tcp writes them."""


class Gateway:
    """`python -m gateway serve` as a child process on a fixed port and data directory."""

    def __init__(self, redis_url: str, data_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.log = data_dir.parent / "gateway.log"
        self.args = [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--workers",
            "1",  # one process: a SIGKILL of it is the crash under test
            "--redis-url",
            redis_url,
            "--port",
            str(self.port),
            "--data-dir",
            str(data_dir),
            "--partitions",
            str(PARTITIONS),
            "--address-rate",
            "0",  # the load comes from one address: no per-address budget
        ]
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "GATEWAY_REDIS_TIMEOUT": "1", **env}
        self.env["GATEWAY_ADMIN_PORT"] = str(free_port())
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait (bounded) until `/health` answers."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=log, stderr=log
            )
        for _ in range(400):
            assert self.process.poll() is None, self.log.read_text()
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/health", timeout=1) as answer,
            ):
                if answer.status == 200:
                    return
            time.sleep(0.025)
        raise AssertionError("the gateway did not start")

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def spooled(self) -> list[Path]:
        return sorted((self.data_dir / "spool").glob("*/*.seg"))


class Load:
    """Unique messages sent by a bounded set of concurrent clients that retry until a 200."""

    def __init__(self, gateway: Gateway, count: int, tag: str) -> None:
        self.gateway = gateway
        self.messages = [
            {
                "userId": f"user-{i % 50}",
                "event": "Load",
                "messageId": f"{tag}-{i}",
                "properties": {"i": i},
                "writeKey": "wk",
            }
            for i in range(count)
        ]
        self.oks = 0
        self.phase = 0
        self.acknowledged: dict[str, int] = {}
        """messageId -> the number of faults injected before its 200, to explain a failure."""
        self.errors = 0

    async def run(self, faults: list[tuple[float, Callable[[], Awaitable[None]]]]) -> None:
        """Send everything; run each fault once the given share of messages got a 200."""
        queue = iter(self.messages)
        timeout = aiohttp.ClientTimeout(total=10)
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            senders = [asyncio.create_task(self._send(session, queue)) for _ in range(CONCURRENCY)]
            for share, fault in faults:
                while self.oks < share * len(self.messages):
                    assert not all(s.done() for s in senders)
                    await asyncio.sleep(0.01)
                await fault()
                self.phase += 1
            await asyncio.gather(*senders)

    async def _send(self, session: aiohttp.ClientSession, queue: Iterator[dict[str, Any]]) -> None:
        for message in queue:
            for _ in range(2000):  # bounded: a message that never gets a 200 fails the test
                try:
                    async with session.post(self.gateway.url + "/v1/track", json=message) as r:
                        await r.read()
                        if r.status == 200:
                            self.oks += 1
                            assert message["messageId"] not in self.acknowledged
                            self.acknowledged[message["messageId"]] = self.phase
                            break
                        assert r.status == 503, r.status
                except (aiohttp.ClientError, TimeoutError):
                    pass
                self.errors += 1
                await asyncio.sleep(0.02)
            else:
                raise AssertionError(f"{message['messageId']} never got a 200")

    async def check(self, redis_url: str) -> None:
        """Every message got one 200 and is in the streams exactly once."""
        await drained(self.gateway)
        redis = Redis.from_url(redis_url)
        try:
            ids = []
            for n in range(PARTITIONS):
                for _, fields in await read_stream(redis, events_key(n)):
                    ids.append(msgspec.json.decode(fields[b"data"])["messageId"])
        finally:
            await redis.aclose()
        lost = {i: phase for i, phase in self.acknowledged.items() if i not in set(ids)}
        assert not lost, f"acknowledged, not in the streams (id: faults before its 200): {lost}"
        assert self.oks == len(self.messages)
        assert len(ids) == self.oks  # the count of 200s and the streams' length agree
        assert sorted(ids) == sorted(self.acknowledged)  # each exactly once


async def drained(gateway: Gateway) -> None:
    """Wait (bounded) until the gateway has replayed its spool."""
    async with aiohttp.ClientSession() as session:
        for _ in range(1200):
            async with session.get(gateway.url + "/ready") as r:
                body = await r.json()
            if not body["spool"]["replaying"] and not gateway.spooled():
                return
            await asyncio.sleep(0.025)
    raise AssertionError(f"the spool was not replayed: {body}")


def requests_read(port: int) -> int | None:
    """Connections the process listening on `port` accepted and read dry; None while one waits.

    From /proc/net/tcp: a listening socket's receive queue is its accept backlog, an
    established one's the bytes its process has not read yet.
    """
    read = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        _, local, _, state, queues = line.split()[:5]
        if int(local.rpartition(":")[2], 16) != port or state not in (LISTEN, ESTABLISHED):
            continue
        if int(queues.rpartition(":")[2], 16):
            return None
        read += state == ESTABLISHED
    return read


async def until(condition: Callable[[], bool], what: str, limit: float = 20) -> None:
    """Poll `condition` until it holds; fail after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"not within {limit}s: {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
async def redis_process(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    # `appendfsync always`: with `everysec`, Redis may postpone writing its AOF while a
    # background fsync runs and still reply, so a SIGKILL then can lose writes it
    # acknowledged. The promise assumes Redis keeps what it acknowledged (docs/durability.md).
    server = RedisProcess(tmp_path / "redis", appendfsync="always")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def gateway(redis_process: RedisProcess, tmp_path: Path) -> AsyncIterator[Gateway]:
    process = Gateway(redis_process.url, tmp_path / "data")
    await asyncio.to_thread(process.start)
    yield process
    if process.process is not None and process.process.poll() is None:
        process.process.terminate()
        process.process.wait(30)


async def test_redis_killed_and_restarted_under_load(
    redis_process: RedisProcess, gateway: Gateway
) -> None:
    load = Load(gateway, MESSAGES, "redis-kill")
    spooled: list[list[Path]] = []

    async def kill_redis() -> None:
        redis_process.kill()

    async def restart_redis() -> None:
        spooled.append(gateway.spooled())
        await asyncio.to_thread(redis_process.start)

    await load.run([(0.2, kill_redis), (0.5, restart_redis)])
    assert spooled[0]  # the outage went to disk
    await load.check(redis_process.url)


async def test_gateway_killed_mid_load_and_restarted_on_its_spool(
    redis_process: RedisProcess, gateway: Gateway
) -> None:
    load = Load(gateway, MESSAGES, "gateway-kill")

    async def kill_redis() -> None:
        redis_process.kill()

    async def kill_and_restart_gateway() -> None:
        gateway.kill()
        assert gateway.spooled()  # acknowledged entries wait on disk, not in the dead process
        await asyncio.to_thread(gateway.start)

    async def restart_redis() -> None:
        await asyncio.to_thread(redis_process.start)

    await load.run([(0.15, kill_redis), (0.4, kill_and_restart_gateway), (0.7, restart_redis)])
    await load.check(redis_process.url)


async def test_a_torn_last_record_is_skipped_after_a_crash(
    redis_process: RedisProcess, gateway: Gateway
) -> None:
    load = Load(gateway, MESSAGES, "torn")

    async def kill_redis() -> None:
        redis_process.kill()

    async def crash_tear_and_restart() -> None:
        gateway.kill()
        last = gateway.spooled()[-1]
        ghost = frame(Entry(events_key(0), b'{"messageId": "ghost"}', "default", "ghost"))
        with last.open("ab") as file:
            file.write(ghost[: len(ghost) // 2])  # the write the crash interrupted
        await asyncio.to_thread(gateway.start)

    async def restart_redis() -> None:
        await asyncio.to_thread(redis_process.start)

    await load.run([(0.15, kill_redis), (0.4, crash_tear_and_restart), (0.7, restart_redis)])
    await load.check(redis_process.url)  # no "ghost": exactly the acknowledged messages
    assert "torn record" in gateway.log.read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_finishes_in_flight_requests_and_a_restart_replays_the_spool(
    redis_process: RedisProcess, tmp_path: Path, signum: signal.Signals
) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()
        writer.close()

    blackhole = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    slow_url = f"redis://127.0.0.1:{blackhole.sockets[0].getsockname()[1]}/0"
    stopping = Gateway(slow_url, tmp_path / "data", GATEWAY_SHUTDOWN_GRACE="5")
    await asyncio.to_thread(stopping.start)
    assert stopping.process is not None
    messages = [{"userId": "u", "event": "E", "messageId": f"term-{i}"} for i in range(50)]
    sent = asyncio.Event()
    bodies: list[aiohttp.TraceRequestChunkSentParams] = []

    async def body_sent(
        _session: aiohttp.ClientSession,
        _context: SimpleNamespace,
        params: aiohttp.TraceRequestChunkSentParams,
    ) -> None:
        bodies.append(params)
        if len(bodies) == len(messages):
            sent.set()

    tracing = aiohttp.TraceConfig()
    tracing.on_request_chunk_sent.append(body_sent)
    async with aiohttp.ClientSession(trace_configs=[tracing]) as session:

        async def send(message: dict[str, Any]) -> int:
            async with session.post(stopping.url + "/v1/track", json=message) as r:
                return r.status

        sends = [asyncio.create_task(send(m)) for m in messages]
        # Every request in flight: sent, and read by the gateway, which now waits for a
        # Redis that does not answer (for GATEWAY_REDIS_TIMEOUT, then spools).
        await asyncio.wait_for(sent.wait(), 20)
        await until(lambda: requests_read(stopping.port) == len(messages), "requests read")
        stopping.process.send_signal(signum)
        statuses = await asyncio.gather(*sends)
        exit_code = await asyncio.to_thread(stopping.process.wait, 30)
    blackhole.close()
    assert statuses == [200] * len(messages)
    assert exit_code == 0
    assert stopping.spooled()

    restarted = Gateway(redis_process.url, tmp_path / "data")
    await asyncio.to_thread(restarted.start)
    try:
        await drained(restarted)
        redis = Redis.from_url(redis_process.url)
        rows = [row for n in range(PARTITIONS) for row in await read_stream(redis, events_key(n))]
        await redis.aclose()
        ids = sorted(msgspec.json.decode(f[b"data"])["messageId"] for _, f in rows)
        assert ids == sorted(m["messageId"] for m in messages)
    finally:
        assert restarted.process is not None
        restarted.process.terminate()
        restarted.process.wait(30)
