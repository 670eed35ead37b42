"""Reference 1, the framework's ceiling: aiohttp on uvloop reads the body and answers success.

python bench/ref_bare.py PORT
"""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web

SUCCESS = b'{"success": true}'


async def handle(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=SUCCESS, content_type="application/json")


def main() -> None:
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/{tail:.*}", handle)
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
