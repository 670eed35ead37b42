"""Intilery's rate limit: 100 requests/s per token, bursts to 500, then 429 with Retry-After,
one limit for every gateway process on the same Redis, and a local one when Redis is away."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import requests
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.constants import RATELIMIT_PREFIX, events_key
from gateway.ingest.intilery_source import Intilery
from gateway.ingest.sources import Source, Sources
from gateway.ops.embedded import RedisProcess, free_port
from gateway.store.ratelimit import Limit, RateLimiter
from tests.helpers.gateway import MakeClient
from tests.helpers.processes import ROOT

BASE = "/track/acme/shop/SHOP/v1"
TRACK = msgspec.json.encode({"userId": "u1", "event": "Played"})


def limited_sources(rate: float, burst: int) -> Sources:
    """The `acme/shop` account with tokens `t1` and `t2` and the given limit."""
    account = Intilery(client="acme", account="shop", tokens=["t1", "t2"], rate=rate, burst=burst)
    return Sources([Source(id="shop", write_keys=[], intilery=account)])


async def send(client: TestClient[Any, Any], token: str = "t1") -> tuple[int, str | None, Any]:
    response = await client.post(f"{BASE}/track", data=TRACK, headers={"auth-token": token})
    return response.status, response.headers.get("Retry-After"), await response.json()


async def test_a_burst_of_600_lets_about_500_through(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    # The documented limit (open mode uses it): 100/s, bursts to 500. While the 600 are
    # answered the bucket refills at 100/s, so up to 100 per second taken may pass on top.
    started = time.monotonic()
    answers = await asyncio.gather(*(send(client) for _ in range(600)))
    elapsed = time.monotonic() - started
    statuses = Counter(status for status, _, _ in answers)
    assert set(statuses) == {200, 429}
    assert 500 <= statuses[200] <= 500 + int(100 * elapsed) + 1
    for status, retry_after, body in answers:
        if status == 429:
            assert retry_after == "1"  # one token comes back within 10 ms: wait a second
            assert body == {"success": False, "message": "Rate limit exceeded"}
    assert await redis.xlen(events_key(0)) == statuses[200]


async def test_the_limit_is_exact_per_token(make_client: MakeClient, redis: Redis) -> None:
    # A limit that refills once in 100 s: nothing comes back during the test.
    client = await make_client(sources=limited_sources(rate=0.01, burst=5))
    first = [await send(client, "t1") for _ in range(8)]
    assert [status for status, _, _ in first] == [200] * 5 + [429] * 3
    for _, retry_after, _ in first[5:]:
        assert retry_after is not None
        assert 90 <= int(retry_after) <= 100
    # Another token of the same account has its own bucket.
    second = [await send(client, "t2") for _ in range(6)]
    assert [status for status, _, _ in second] == [200] * 5 + [429]
    assert await redis.xlen(events_key(0)) == 10


async def test_refused_requests_are_counted_before_the_limit(
    make_client: MakeClient, redis: Redis
) -> None:
    # Missing and unauthorised tokens are refused first: they use nobody's bucket.
    client = await make_client(sources=limited_sources(rate=0.01, burst=2))
    for token in ("", "intruder", "intruder"):
        status, _, _ = await send(client, token)
        assert status == 403
    assert await redis.keys(f"{RATELIMIT_PREFIX}:*") == []
    assert [(await send(client))[0] for _ in range(3)] == [200, 200, 429]


async def test_two_gateways_share_one_limit(make_client: MakeClient, redis: Redis) -> None:
    sources = limited_sources(rate=0.01, burst=10)
    one = await make_client(sources=sources)
    two = await make_client(sources=sources)
    statuses = []
    for _ in range(8):
        statuses.append((await send(one))[0])
        statuses.append((await send(two))[0])
    assert statuses == [200] * 10 + [429] * 6
    assert await redis.xlen(events_key(0)) == 10


@pytest.fixture
async def limiter(redis_server: RedisProcess) -> AsyncIterator[RateLimiter]:
    """One process's limiter on the test server."""
    limiter = RateLimiter(redis_server.url, timeout=2.0, processes=1)
    yield limiter
    await limiter.close()


async def test_limiter_refills_at_its_rate(limiter: RateLimiter, redis: Redis) -> None:
    limit = Limit(rate=20, burst=2)
    assert [(await limiter.check("k", limit)).allowed for _ in range(3)] == [True, True, False]
    await asyncio.sleep(0.1)  # 20/s: one token back every 50 ms
    assert (await limiter.check("k", limit)).allowed
    assert limiter.fallbacks == 0


async def test_concurrent_checks_share_round_trips_and_stay_exact(
    limiter: RateLimiter, redis: Redis
) -> None:
    limit = Limit(rate=0.01, burst=10)
    decisions = await asyncio.gather(*(limiter.check("k", limit) for _ in range(64)))
    assert sum(decision.allowed for decision in decisions) == 10
    assert all(90 <= d.retry_after <= 100 for d in decisions if not d.allowed)
    # The 64 checks start in one event-loop turn: they share one script call.
    assert limiter.flushes == 1
    await redis.script_flush()  # as after a restart: the script is sent again
    assert not (await limiter.check("k", limit)).allowed
    assert (await limiter.check("other", limit)).allowed
    assert limiter.fallbacks == 0


async def test_a_fast_limit_is_spent_from_leases(limiter: RateLimiter, redis: Redis) -> None:
    # 100,000/s on one process: leases of 1,000 tokens (10 ms of the rate), the next asked
    # for once half is spent. 20,000 checks one after the other ask Redis about 40 times,
    # where each would have asked once.
    limit = Limit(rate=100_000, burst=100_000)
    allowed = [(await limiter.check("k", limit)).allowed for _ in range(20_000)]
    assert all(allowed)
    assert limiter.flushes <= 45, limiter.flushes
    assert limiter.fallbacks == 0


async def test_leases_of_two_processes_keep_the_shared_limit(
    redis_server: RedisProcess, redis: Redis
) -> None:
    # Two processes' limiters on one bucket of 300 refilling at 1,000/s: leases of 5 tokens
    # each (10 ms of the rate, halved). Tokens held in a lease are not the other process's,
    # so at most 1.5 leases a process are let through early or held back.
    one, two = (RateLimiter(redis_server.url, timeout=2.0, processes=2) for _ in range(2))
    try:
        limit = Limit(rate=1_000, burst=300)
        started = time.monotonic()
        allowed = 0
        for _ in range(400):
            allowed += (await one.check("k", limit)).allowed
            allowed += (await two.check("k", limit)).allowed
        elapsed = time.monotonic() - started
        held = 2 * 1.5 * 5
        assert 300 - held <= allowed <= 300 + 1_000 * elapsed + held, (allowed, elapsed)
        assert one.flushes + two.flushes < 800  # the leases saved round trips
    finally:
        await one.close()
        await two.close()


async def test_a_changed_limit_is_not_spent_from_the_old_lease(
    limiter: RateLimiter, redis: Redis
) -> None:
    assert (await limiter.check("k", Limit(rate=100_000, burst=100_000))).allowed
    assert limiter.take("k", Limit(rate=100_000, burst=100_000), 1)  # a lease is held
    # The source's limit is lowered (sources file, admin API): the lease is not used,
    # and the bucket is capped at the new burst.
    lowered = Limit(rate=0.01, burst=2)
    assert not limiter.take("k", lowered, 1)
    assert [(await limiter.check("k", lowered)).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]


async def test_slow_limits_take_no_lease(limiter: RateLimiter, redis: Redis) -> None:
    # 100/s on one process would be a lease of 1 token: every check asks Redis, exactly.
    limit = Limit(rate=100, burst=100)
    for _ in range(5):
        assert (await limiter.check("k", limit)).allowed
    assert limiter.flushes == 5
    assert not limiter.take("k", limit, 1)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


async def test_without_redis_each_process_limits_alone(
    make_client: MakeClient, own_redis: RedisProcess
) -> None:
    # Redis away: messages go to the spool, and the limit is kept in the process, at its
    # share of the limit (here 1 of 1 process), rather than refusing everything.
    client = await make_client(
        sources=limited_sources(rate=0.01, burst=5), redis_url=own_redis.url, workers=1
    )
    own_redis.stop()
    statuses = [(await send(client))[0] for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3


async def test_without_redis_the_limit_is_split_between_processes(
    make_client: MakeClient, own_redis: RedisProcess
) -> None:
    client = await make_client(
        sources=limited_sources(rate=0.01, burst=6), redis_url=own_redis.url, workers=3
    )
    own_redis.stop()
    statuses = [(await send(client))[0] for _ in range(4)]
    assert statuses == [200] * 2 + [429] * 2


def _post(port: int) -> int:
    # A new connection each time, so that the kernel spreads them over the processes.
    response = requests.post(
        f"http://127.0.0.1:{port}{BASE}/track",
        data=TRACK,
        headers={"auth-token": "t1", "Connection": "close"},
        timeout=10,
    )
    return response.status_code


@pytest.mark.slow
def test_serve_workers_share_one_limit(tmp_path: Path, redis_server: RedisProcess) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[[source]]\nid = "shop"\nwrite_keys = []\n[source.intilery]\n'
        'client = "acme"\naccount = "shop"\ntokens = ["t1"]\nrate = 0.01\nburst = 20\n'
    )
    port = free_port()
    log = tmp_path / "gateway.log"
    args = ["serve", "--port", str(port), "--host", "127.0.0.1", "--workers", "2"]
    args += ["--redis-url", redis_server.url, "--sources", str(sources), "--data-dir", "data"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=tmp_path,
        )
    try:
        _wait_listening(process, log, workers=2)
        statuses = [_post(port) for _ in range(40)]
        assert statuses == [200] * 20 + [429] * 20
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)


def _wait_listening(process: subprocess.Popen[bytes], log: Path, workers: int) -> None:
    """Until every worker listens: traffic sent before would all reach the first one."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if log.read_text().count("listening on") >= workers:
            return
        if process.poll() is not None:
            pytest.fail(f"gateway exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(0.05)
    pytest.fail(f"the gateway did not start:\n{log.read_text()}")
