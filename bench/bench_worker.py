"""Worker throughput: how fast `gateway worker --burst` drains a backlog.

    python bench/bench_worker.py [--messages 50000] [--batch-size 100]

Starts its own Redis-compatible server, fills two partitions with track messages of about
400 bytes, then times `gateway worker --burst` (one, then two in one group) to a `file`
destination and to an `http` destination (an aiohttp sink in this process). The time
includes the worker's start (about half a second). Results go to stdout as a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.constants import events_key  # noqa: E402
from gateway.ops.embedded import RedisProcess, free_port  # noqa: E402


async def fill(redis: Redis, count: int) -> None:
    pipe = redis.pipeline(transaction=False)
    for n in range(count):
        message = {
            "type": "track",
            "event": "Order Completed",
            "userId": f"user-{n % 1000}",
            "messageId": f"bench-{n}",
            "properties": {"orderId": n, "revenue": 12.5, "currency": "EUR", "items": 3},
            "context": {"library": {"name": "analytics-python", "version": "2.3.0"}},
            "timestamp": "2024-05-01T12:00:00.000Z",
            "receivedAt": "2024-05-01T12:00:00.100Z",
        }
        pipe.xadd(events_key(n % 2), {"data": json.dumps(message), "source": "bench"})
        if n % 5000 == 4999:
            await pipe.execute()
    await pipe.execute()


async def run_workers(workers: int, *args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "worker",
            *args,
            "--burst",
            "--partitions",
            "2",
            cwd=ROOT,
            env=env,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    codes = [await p.wait() for p in processes]
    assert codes == [0] * workers, codes
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=100)
    options = parser.parse_args()
    received = 0

    async def sink(request: web.Request) -> web.Response:
        nonlocal received
        received += len((await request.json())["batch"])
        return web.json_response({"success": True})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/batch", sink)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    with tempfile.TemporaryDirectory() as directory:
        server = RedisProcess(Path(directory) / "redis")
        server.start()
        redis = Redis.from_url(server.url)
        try:
            await fill(redis, options.messages)
            print(f"{options.messages} messages, batches of {options.batch_size}\n")
            print("| destination | workers | seconds | messages/s |\n|---|---|---|---|")
            common = ["--redis-url", server.url, "--batch-size", str(options.batch_size)]
            cases = [
                ("file", 1, ["--destination", "file", "--path", f"{directory}/f1"]),
                ("file", 2, ["--destination", "file", "--path", f"{directory}/f2"]),
                ("http", 1, ["--destination", "http", "--url", f"http://127.0.0.1:{port}/v1/batch"]),
                ("http", 2, ["--destination", "http", "--url", f"http://127.0.0.1:{port}/v1/batch"]),
            ]  # fmt: skip
            for index, (kind, workers, args) in enumerate(cases):
                seconds = await run_workers(workers, *common, "--group", f"g{index}", *args)
                rate = options.messages / seconds
                print(f"| {kind} | {workers} | {seconds:.2f} | {rate:,.0f} |")
            assert received == 2 * options.messages, received
        finally:
            await redis.aclose()
            server.stop()
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
