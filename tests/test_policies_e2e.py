"""Per-source policies with real processes: `gateway serve` (two processes), a real SDK
(analytics-python), Commanders Act requests, `gateway worker` with two destinations, and a
real Redis scanned key by key."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from gateway.ops.embedded import RedisProcess, free_port
from tests.helpers.destinations import Collector
from tests.helpers.gateway import ADMIN_AUTH, ADMIN_TOKEN
from tests.helpers.missing import missing
from tests.helpers.processes import gateway
from tests.helpers.serve import start, stop, wait_for
from tests.helpers.streams import stream_messages
from tests.test_policies import every_value_in_redis

try:
    from segment.analytics import client as segment
except ImportError:
    missing("analytics-python is not installed: pip install -e '.[test]'")

pytestmark = pytest.mark.slow

SECRET = "e2e-secret-for-hashing"
CA = {"tc_s": "7", "token": "ca-e2e-token"}
EMAIL = "grace.hopper@example.com"
CARD = "5500000000000004"
SOURCES = f"""
[[source]]
id = "web"
write_keys = ["wk_web"]
ip = "truncate"
hash_secret = "{SECRET}"
[source.fields]
"traits.email" = "hash"
"context.traits.email" = "hash"
"properties.card" = "drop"
[source.commanders_act]
site_id = 7
source_keys = ["{CA["token"]}"]

[[source]]
id = "limited"
write_keys = ["wk_limited"]
[source.rate_limit]
rate = 100
burst = 200

[[source]]
id = "other"
write_keys = ["wk_other"]
"""


ADMIN_PORT = free_port()


@pytest.fixture
def served(tmp_path: Path, redis_server: RedisProcess) -> Iterator[str]:
    """`gateway serve --workers 2` with the sources above; its base URL (the admin
    listener on `ADMIN_PORT`)."""
    (tmp_path / "sources.toml").write_text(SOURCES)
    port = free_port()
    log = tmp_path / "gateway.log"
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    args += ["--redis-url", redis_server.url, "--sources", "sources.toml", "--data-dir", "data"]
    args += ["--address-rate", "0"]  # one test address: the per-address budget stays out
    args += ["--admin-port", str(ADMIN_PORT), "--admin-token", ADMIN_TOKEN]
    process = start(args, log)
    try:
        wait_for("listening on", log, process, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    server = Collector()
    yield server
    await server.close()


def send_with_sdk(host: str) -> list[str]:
    errors: list[str] = []
    sdk = segment.Client(
        "wk_web",
        host=host,
        sync_mode=True,
        max_retries=0,
        on_error=lambda e, _: errors.append(str(e)),
    )
    denied = {"consent": {"categoryPreferences": {"advertising": False, "analytics": True}}}
    granted = {"consent": {"categoryPreferences": {"advertising": True, "analytics": True}}}
    sdk.identify("u1", {"email": EMAIL}, context={"ip": "203.0.113.45", **granted})
    sdk.track(
        "u1", "Paid", {"card": CARD, "total": 9}, context={"traits": {"email": EMAIL}, **denied}
    )
    sdk.track("u1", "Viewed", {}, context={"ip": "2001:db8:aa:bb::1"})  # no consent object
    sdk.flush()
    return errors


async def test_consent_ip_and_fields_end_to_end(
    served: str, redis: Redis, redis_server: RedisProcess, collector: Collector, tmp_path: Path
) -> None:
    errors = await asyncio.to_thread(send_with_sdk, served)
    assert errors == []
    async with aiohttp.ClientSession() as http:
        for event, categories in (("ca_denied", ["1"]), ("ca_granted", ["1", "advertising"])):
            body = {
                "event_name": event,
                "user": {"id": "u2", "email": EMAIL, "consent_categories": categories},
                "context": {"device": {"ip": "198.51.100.77"}},
            }
            async with http.post(f"{served}/events", params=CA, json=body) as response:
                assert response.status == 200, await response.text()

    stored = await stream_messages(redis)
    assert len(stored) == 5
    hashed = hmac.new(SECRET.encode(), EMAIL.encode(), hashlib.sha256).hexdigest()
    by_event = {m.get("event", m["type"]): m for m in stored}
    assert by_event["identify"]["traits"]["email"] == hashed
    assert by_event["Paid"]["context"]["traits"]["email"] == hashed
    assert by_event["Paid"]["properties"] == {"total": 9}
    assert by_event["ca_denied"]["context"]["traits"]["email"] == hashed  # joins across routes
    assert {m.get("event", m["type"]): m["context"].get("ip") for m in stored} == {
        "identify": "203.0.113.0",
        "Paid": None,  # a server SDK's message without an address gets none
        "Viewed": "2001:db8:aa::",
        "ca_denied": "198.51.100.0",
        "ca_granted": "198.51.100.0",
    }
    everything = await every_value_in_redis(redis)
    for clear in (EMAIL, CARD, "203.0.113.45", "198.51.100.77", "2001:db8:aa:bb::1"):
        assert clear.encode() not in everything

    url = await collector.start()
    config = tmp_path / "destinations.toml"
    config.write_text(
        f'[[destination]]\nname = "Ads"\nkind = "http"\nurl = "{url}/ads"\n'
        'consent = ["advertising"]\n\n'
        f'[[destination]]\nname = "Warehouse"\nkind = "http"\nurl = "{url}/all"\n'
    )
    code, _, err = await gateway(
        "worker", "--redis-url", redis_server.url, "--group", "g", "--config", str(config),
        "--burst",
    )  # fmt: skip
    assert code == 0, err
    names = {m.get("event", m["type"]) for m in collector.accepted["/all"]}
    assert names == {"identify", "Paid", "Viewed", "ca_denied", "ca_granted"}
    ads = {m.get("event", m["type"]) for m in collector.accepted["/ads"]}
    # Denied (Segment's false, Commanders Act's category missing) reach only the other;
    # no consent object at all: delivered (the source's no_consent default, as Segment).
    assert ads == {"identify", "Viewed", "ca_granted"}
    assert (await redis.xpending("gateway:events:{0}", "g"))["pending"] == 0


async def _post(http: aiohttp.ClientSession, base: str, key: str, n: int) -> tuple[int, Any]:
    body = {"userId": f"u{n}", "event": "Burst", "writeKey": key}
    # A new connection each time, so that the kernel spreads them over both processes.
    async with http.post(f"{base}/v1/track", json=body, headers={"Connection": "close"}) as r:
        return r.status, r.headers.get("Retry-After")


async def test_a_burst_of_1000_across_two_processes(served: str, redis: Redis) -> None:
    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=100, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        answers = await asyncio.gather(*(_post(http, served, "wk_limited", n) for n in range(1000)))
        elapsed = time.monotonic() - started
        others = await asyncio.gather(*(_post(http, served, "wk_other", n) for n in range(50)))
    statuses = Counter(status for status, _ in answers)
    assert set(statuses) == {200, 429}
    # The bucket holds 200 and refills at 100/s while the burst is answered.
    assert 200 <= statuses[200] <= 200 + int(100 * elapsed) + 1, (statuses, elapsed)
    assert all(retry is not None and int(retry) >= 1 for status, retry in answers if status == 429)
    assert [status for status, _ in others] == [200] * 50
    stored = Counter(m["_source"] for m in await stream_messages(redis))
    assert stored == {"limited": statuses[200], "other": 50}


async def test_a_patch_is_in_force_on_every_process_within_a_second(
    served: str, redis: Redis
) -> None:
    admin = f"http://127.0.0.1:{ADMIN_PORT}"
    async with aiohttp.ClientSession(headers=ADMIN_AUTH) as api:
        async with api.post(f"{admin}/v1/sources", json={"id": "api"}) as response:
            assert response.status == 201, await response.text()
        async with api.post(f"{admin}/v1/sources/api/keys", json={"kind": "write_key"}) as r:
            key = (await r.json())["key"]
        change = {"ip": "drop", "rate_limit": {"rate": 0.01, "burst": 30}}
        async with api.patch(f"{admin}/v1/sources/api", json=change) as response:
            assert response.status == 200, await response.text()
    await asyncio.sleep(1.0)
    body = {"userId": "u", "event": "After", "writeKey": key, "context": {"ip": "192.0.2.9"}}
    connector = aiohttp.TCPConnector(force_close=True)  # new connections: both processes
    async with aiohttp.ClientSession(connector=connector) as http:
        statuses = []
        for _ in range(40):
            async with http.post(f"{served}/v1/track", json=body) as response:
                statuses.append(response.status)
    assert statuses == [200] * 30 + [429] * 10  # one limit, shared by both processes
    stored = await stream_messages(redis)
    assert len(stored) == 30
    assert all("ip" not in m["context"] for m in stored)
