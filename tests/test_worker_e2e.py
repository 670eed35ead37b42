"""End to end: the gateway, workers as real processes, a real HTTP destination."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.constants import dead_letter_key, events_key
from gateway.ops.embedded import RedisProcess
from tests.helpers.destinations import Collector
from tests.helpers.gateway import MakeClient
from tests.helpers.processes import finish, gateway, kill, serving, start, wait_for_line
from tests.helpers.streams import read_stream, stream_messages

pytestmark = pytest.mark.slow


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    server = Collector()
    yield server
    await server.close()


def track(n: int, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "userId": f"user-{n % 7}", "event": "Clicked",
            "messageId": f"m{n}", "properties": {"n": n}, **extra}  # fmt: skip


async def enqueued(redis: Redis, partitions: int = 1) -> dict[str, dict[str, Any]]:
    """Every message in the streams by messageId, as a destination should receive it."""
    out: dict[str, dict[str, Any]] = {}
    for partition in range(partitions):
        for message in await stream_messages(redis, partition):
            message.pop("_source")
            out[message["messageId"]] = message
    return out


async def pending(redis: Redis, group: str, partitions: int = 1) -> int:
    total = 0
    for partition in range(partitions):
        total += int((await redis.xpending(events_key(partition), group))["pending"])
    return total


def worker_args(redis_url: str, url: str, *extra: str) -> list[str]:
    return ["worker", "--redis-url", redis_url, "--group", "g", "--destination", "http",
            "--url", url, *extra]  # fmt: skip


async def post_batch(client: TestClient[Any, Any], messages: list[dict[str, Any]]) -> None:
    response = await client.post("/v1/batch", json={"batch": messages})
    assert response.status == 200, await response.text()


async def test_two_workers_share_a_group_and_another_group_gets_everything_again(
    redis: Redis, redis_server: RedisProcess, collector: Collector, tmp_path: Path
) -> None:
    url = await collector.start()
    data = tmp_path / "data"
    async with (
        serving(redis_server.url, data, "--partitions", "2") as base,
        aiohttp.ClientSession() as http,
    ):
        for start_n in range(0, 60, 10):
            batch = {"batch": [track(n) for n in range(start_n, start_n + 10)]}
            async with http.post(f"{base}/v1/batch", json=batch) as response:
                assert response.status == 200, await response.text()
        async with http.post(f"{base}/v1/track", json=track(60, userId="solo")) as response:
            assert response.status == 200
    expected = await enqueued(redis, partitions=2)
    assert len(expected) == 61

    args = worker_args(redis_server.url, f"{url}/v1/batch", "--partitions", "2", "--burst",
                       "--batch-size", "7", "--header", "Authorization: Basic d2s6")  # fmt: skip
    results = await asyncio.gather(gateway(*args), gateway(*args))

    assert [code for code, _, _ in results] == [0, 0]
    ids = collector.ids("/v1/batch")
    assert sorted(ids) == sorted(expected)  # each message once
    assert {m["messageId"]: m for m in collector.accepted["/v1/batch"]} == expected  # unchanged
    assert all(h["Authorization"] == "Basic d2s6" for h in collector.headers)
    delivered = [int(err.rsplit("delivered ", 1)[1].split()[0]) for _, _, err in results]
    assert sum(delivered) == 61
    assert await pending(redis, "g", partitions=2) == 0

    archive = tmp_path / "archive"
    code, _, err = await gateway("worker", "--redis-url", redis_server.url, "--group",
                                 "archive", "--destination", "file", "--path", str(archive),
                                 "--burst")  # fmt: skip
    assert code == 0, err
    lines = (archive / "events-000001.ndjson").read_text().splitlines()
    assert {m["messageId"]: m for m in map(json.loads, lines)} == expected
    assert len(lines) == 61

    code, out, err = await gateway("status", "--redis-url", redis_server.url, "--json")
    assert code == 0, err
    status = json.loads(out)
    assert sum(s["length"] for s in status["streams"]) == 61
    assert {(g["group"], g["pending"], g["lag"]) for g in status["groups"]} == {
        ("g", 0, 0),
        ("archive", 0, 0),
    }


async def test_destination_failing_for_a_while_loses_nothing(
    make_client: MakeClient, redis: Redis, redis_server: RedisProcess, collector: Collector
) -> None:
    url = await collector.start()
    client = await make_client()
    await post_batch(client, [track(n) for n in range(30)])
    collector.fail_next = 7  # in-place retries and worker-level retries both get 500s

    code, _, err = await gateway(*worker_args(redis_server.url, url, "--burst", "--batch-size",
                                              "10", "--retries", "1", "--reclaim-idle", "0.3",
                                              "--max-attempts", "20"))  # fmt: skip

    assert code == 0, err
    assert collector.fail_next == 0
    assert sorted(collector.ids("/")) == sorted(await enqueued(redis))
    assert await redis.xlen(dead_letter_key("g")) == 0
    assert await pending(redis, "g") == 0
    assert "failed (attempt 1 of 20): http: HTTP 500" in err


async def test_a_killed_workers_batch_is_delivered_by_another(
    make_client: MakeClient, redis: Redis, redis_server: RedisProcess, collector: Collector
) -> None:
    url = await collector.start()
    client = await make_client()
    await post_batch(client, [track(n) for n in range(20)])
    collector.hold = asyncio.Event()

    first = await start(*worker_args(redis_server.url, url, "--consumer", "a", "--header",
                                     "X-Worker: a", "--reclaim-idle", "1"))  # fmt: skip
    await asyncio.wait_for(collector.arrived.wait(), 30)  # the batch is in its hands
    summary = await redis.xpending(events_key(0), "g")
    assert summary["pending"] == 20
    assert [(c["name"], c["pending"]) for c in summary["consumers"]] == [(b"a", 20)]
    kill(first)
    await first.wait()
    collector.hold.set()

    code, _, err = await gateway(*worker_args(redis_server.url, url, "--consumer", "b", "--header",
                                              "X-Worker: b", "--reclaim-idle", "1",
                                              "--burst"))  # fmt: skip

    assert code == 0, err
    assert "reclaimed 20 entries" in err
    assert sorted(m["messageId"] for m in collector.by_worker["b"]) == sorted(await enqueued(redis))
    assert await pending(redis, "g") == 0


async def test_sigterm_finishes_the_batch_in_hand(
    make_client: MakeClient, redis: Redis, redis_server: RedisProcess, collector: Collector
) -> None:
    url = await collector.start()
    client = await make_client()
    await post_batch(client, [track(n) for n in range(5)])
    collector.hold = asyncio.Event()
    process = await start(*worker_args(redis_server.url, url))
    await asyncio.wait_for(collector.arrived.wait(), 30)

    process.terminate()
    await wait_for_line(process, "finishing the batch in hand")
    collector.hold.set()
    code, _, err = await finish(process)

    assert code == 0, err
    assert "stopped: delivered 5 messages" in err
    assert sorted(collector.ids("/")) == sorted(await enqueued(redis))
    assert await pending(redis, "g") == 0


async def test_always_rejected_message_is_dead_lettered_then_redriven(
    make_client: MakeClient, redis: Redis, redis_server: RedisProcess, collector: Collector
) -> None:
    url = await collector.start()
    client = await make_client()
    await post_batch(client, [track(1), track(2, messageId="poison"), track(3)])
    collector.reject = {"poison"}

    code, _, err = await gateway(*worker_args(redis_server.url, url, "--burst", "--max-attempts",
                                              "3", "--reclaim-idle", "0.2"))  # fmt: skip

    assert code == 0, err
    assert sorted(collector.ids("/")) == ["m1", "m3"]
    assert await pending(redis, "g") == 0
    letters = await read_stream(redis, dead_letter_key("g"))
    assert len(letters) == 1
    fields = letters[0][1]
    poison = (await enqueued(redis))["poison"]
    assert json.loads(fields[b"data"]) == poison
    assert fields[b"attempts"] == b"3"
    assert fields[b"error"] == b"http: rejected: Bad Request: refused"
    assert json.loads(fields[b"destinations"]) == ["http"]
    assert fields[b"stream"] == events_key(0).encode()

    redrive = ["dead-letters", "redrive", "--redis-url", redis_server.url, "--group", "g",
               "--destination", "http", "--url", url]  # fmt: skip
    code, out, err = await gateway(*redrive)  # still refused: kept
    assert code == 1, err
    assert "0 delivered, 1 refused again" in out
    assert await redis.xlen(dead_letter_key("g")) == 1

    collector.reject = set()
    code, out, err = await gateway(*redrive)

    assert code == 0, err
    assert "1 delivered" in out
    assert collector.ids("/") == ["m1", "m3", "poison"]
    assert collector.accepted["/"][-1] == poison
    assert await redis.xlen(dead_letter_key("g")) == 0


async def test_integrations_route_messages_between_two_destinations(
    make_client: MakeClient,
    redis: Redis,
    redis_server: RedisProcess,
    collector: Collector,
    tmp_path: Path,
) -> None:
    url = await collector.start()
    config = tmp_path / "destinations.toml"
    config.write_text(
        f"""
[[destination]]
name = "Mixpanel"
kind = "http"
url = "{url}/mixpanel"

[[destination]]
name = "Amplitude"
kind = "http"
url = "{url}/amplitude"
headers = {{ "X-Api-Key" = "k1" }}
"""
    )
    client = await make_client()
    await post_batch(
        client,
        [
            track(1),  # no integrations object: everywhere
            track(2, integrations={"All": False, "Mixpanel": True}),
            track(3, integrations={"Mixpanel": False}),
            track(4, integrations={"All": True, "Amplitude": False}),
            track(5, integrations={"All": False, "amplitude": {"option": 1}}),
            track(6, integrations={"All": False}),  # nowhere, and done
        ],
    )

    code, _, err = await gateway("worker", "--redis-url", redis_server.url, "--group", "g",
                                 "--config", str(config), "--burst")  # fmt: skip

    assert code == 0, err
    assert sorted(collector.ids("/mixpanel")) == ["m1", "m2", "m4"]
    assert sorted(collector.ids("/amplitude")) == ["m1", "m3", "m5"]
    amplitude = [h for h in collector.headers if h.get("X-Api-Key") == "k1"]
    assert len(amplitude) == 1
    assert await pending(redis, "g") == 0


async def test_without_a_redis_url_the_embedded_servers_url_file_is_used(
    redis: Redis, redis_server: RedisProcess, tmp_path: Path
) -> None:
    await redis.xadd(events_key(0), {"data": b"{}", "source": b"default"})
    code, _, err = await gateway("status", "--data-dir", str(tmp_path))
    assert code == 2
    assert "pass --redis-url" in err

    (tmp_path / "embedded-redis.url").write_text(redis_server.url + "\n")
    code, out, err = await gateway("status", "--data-dir", str(tmp_path))
    assert code == 0, err
    assert f"using the embedded server at {redis_server.url}" in err
    assert "gateway:events:{0}        1" in out
