"""Reference 2, what a user would write instead of the gateway: aiohttp, the standard
library's `json`, and one redis-py `XADD` per message, awaited before answering.

    python bench/ref_naive.py PORT REDIS_URL

It runs on uvloop like the gateway, so the comparison is about the work per request,
not the event loop. Batches go out as one pipeline of `XADD`s (one round trip).
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import uvloop
from aiohttp import web
from redis.asyncio import Redis

STREAM = "gateway:events:{0}"
REDIS = web.AppKey("redis", Redis)


def enrich(message: dict[str, Any]) -> bytes:
    message.setdefault("messageId", str(uuid.uuid4()))
    message["receivedAt"] = datetime.now(UTC).isoformat(timespec="milliseconds")
    return json.dumps(message).encode()


async def track(request: web.Request) -> web.Response:
    message = json.loads(await request.read())
    message["type"] = "track"
    await request.app[REDIS].xadd(STREAM, {"data": enrich(message), "source": "default"})
    return web.json_response({"success": True})


async def batch(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    pipe = request.app[REDIS].pipeline(transaction=False)
    for message in body["batch"]:
        pipe.xadd(STREAM, {"data": enrich(message), "source": "default"})
    await pipe.execute()
    return web.json_response({"success": True})


def main() -> None:
    app = web.Application(client_max_size=1024 * 1024)

    async def connect(app: web.Application) -> Any:
        app[REDIS] = Redis.from_url(sys.argv[2])
        yield
        await app[REDIS].aclose()

    app.cleanup_ctx.append(connect)
    app.router.add_post("/v1/t", track)
    app.router.add_post("/v1/track", track)
    app.router.add_post("/v1/batch", batch)
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
