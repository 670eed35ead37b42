"""What the messageId index costs the hot path (`gateway.store.event_index`).

On the embedded server, writes N track messages of about 1 KB in chunks of 229 (a busy
flush) through the dedupe script, with the index and without, in alternating rounds, and
prints per message: Redis's memory (`used_memory`, and `MEMORY USAGE` of the index's
hashes), Redis's CPU (`INFO cpu`, user + sys), and the Python the gateway spends building
the calls (timeit of `dedupe_script.calls`) and reading the route of a request.
Run: `python -m bench.event_index [N]`; results go in docs/performance.md and docs/admin.md.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import timeit
import uuid
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from redis.asyncio import Redis

from bench.dedupe_memory import embedded
from gateway.constants import events_key
from gateway.store import dedupe_script, refusals
from gateway.store.dedupe_script import DEDUPE
from gateway.store.entry import Entry
from gateway.store.resp import RespConnection

FLUSH = 229
WINDOW, SPAN = b"3600", b"%d" % dedupe_script.bucket_seconds(3600)
DATA = (
    b'{"type":"track","event":"Order Completed","userId":"user-1234","properties":{"pad":"'
    + b"x" * 900
    + b'"}}'
)


def entries(count: int) -> list[Entry]:
    stream = events_key(0)
    return [Entry(stream, DATA, "web", str(uuid.uuid4()), "/v1/track") for _ in range(count)]


async def cpu(redis: Redis) -> float:
    info: dict[str, Any] = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def write(url: str, redis: Redis, count: int, index: bool) -> tuple[float, int]:
    """Redis CPU seconds and memory bytes for `count` messages, from an empty server."""
    await redis.flushall()
    connection = await RespConnection.open(url, 5)
    await connection.execute(DEDUPE.load, 1)
    messages = entries(count)
    memory = int((await redis.info("memory"))["used_memory"])
    start = await cpu(redis)
    for first in range(0, count, FLUSH):
        calls = dedupe_script.calls(messages[first : first + FLUSH], WINDOW, SPAN, index)
        await connection.execute(b"".join(calls), len(calls))
    spent = await cpu(redis) - start
    used = int((await redis.info("memory"))["used_memory"]) - memory
    connection.close()
    return spent, used


async def python_cost() -> tuple[float, float, float, float]:
    """µs per message of building the calls without and with the index; of `_route`; of
    noting a refusal."""
    batch = entries(FLUSH)
    runs = 200
    without = min(
        timeit.repeat(lambda: dedupe_script.calls(batch, WINDOW, SPAN, False), number=runs)
    )
    with_index = min(timeit.repeat(lambda: dedupe_script.calls(batch, WINDOW, SPAN), number=runs))
    app = web.Application()
    app.router.add_post("/v1/track", _ok)
    request = make_mocked_request("POST", "/v1/track", app=app)
    match = await app.router.resolve(request)
    route = min(timeit.repeat(lambda: _route(match), number=100_000)) * 10
    noted = refusals.Refusals()

    def note() -> None:
        message_id, at = "0b4c7f8e-6b1d-4b43-9d25-3f9a4c2e7a10", "2026-12-02T02:41:00.000Z"
        noted.note(message_id, "Invalid message: at `$.userId`", "/v1/t", at)
        noted._pending.clear()

    refusal = min(timeit.repeat(note, number=100_000)) * 10
    per = 1e6 / (runs * FLUSH)
    return without * per, with_index * per, route, refusal


async def _ok(request: web.Request) -> web.Response:
    return web.Response()


def _route(match: Any) -> str:
    resource = match.route.resource  # what `gateway.http.handlers._route` reads
    return "" if resource is None else str(resource.canonical)


async def main(count: int, rounds: int) -> None:
    async with embedded() as (server, redis):
        info = await redis.info("server")
        cpu_without: list[float] = []
        cpu_with: list[float] = []
        memory: dict[bool, int] = {}
        for _ in range(rounds):
            for index, into in ((False, cpu_without), (True, cpu_with)):
                spent, memory[index] = await write(server.url, redis, count, index)
                into.append(spent * 1e6 / count)
        hashes = [k async for k in redis.scan_iter("gateway:where:*")]
        in_hashes = sum([await redis.memory_usage(k, samples=0) or 0 for k in hashes])
    version = info.get("valkey_version") or info["redis_version"]
    print(f"server: {info.get('server_name', 'redis')} {version}; {count} messages a round")
    extra = (memory[True] - memory[False]) / count
    print(f"used_memory with the index: {extra:.1f} B/message more")
    print(f"  = {extra * 1e6 / 2**20:.0f} MiB per million messages in the window")
    print(f"MEMORY USAGE of the index's hashes: {in_hashes / count:.1f} B/message")
    differences = [b - a for a, b in zip(cpu_without, cpu_with, strict=True)]
    print(
        f"Redis CPU per message over {rounds} rounds, without / with the index: "
        f"lowest {min(cpu_without):.2f} / {min(cpu_with):.2f} µs, "
        f"median {statistics.median(cpu_without):.2f} / {statistics.median(cpu_with):.2f} µs; "
        f"median difference of a round's pair {statistics.median(differences):.2f} µs"
    )
    without, with_index, route, refusal = await python_cost()
    print(
        f"Python per message, building the calls: {without:.3f} µs without, "
        f"{with_index:.3f} µs with the index; reading the route: {route:.3f} µs a request; "
        f"noting a refusal: {refusal:.3f} µs"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000, 15))
