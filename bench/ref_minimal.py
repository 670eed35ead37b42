"""Reference 3, the gateway's necessary work alone: the bare app (reference 1) plus, for each
`track` message, the gateway's own validation, enrichment and encoding (`Ingest`) and its
group commit to Redis with dedupe (`Committer`), awaited before the answer.

    python bench/ref_minimal.py PORT REDIS_URL SOURCES DATA_DIR

Nothing else of the gateway: no request ids, metrics, CORS, JSON error answers, rate limits
or body limits. The gap between this and the gateway is what those cost; the gap between
this and the bare app is what validating a message and storing it durably costs.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import uvloop
from aiohttp import web

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.errors import success
from gateway.http.app_keys import COMMITTER, INGEST
from gateway.http.handlers import arrival_of
from gateway.ingest.pipeline import Ingest
from gateway.ingest.sources import Sources
from gateway.settings import Settings
from gateway.store.committer import Committer
from gateway.store.node_writer import NodeWriter
from gateway.store.spool import Spool


def create_minimal_app(redis_url: str, sources: Sources, data_dir: Path) -> web.Application:
    """The reference as an aiohttp application answering `POST /v1/t`."""
    settings = Settings(redis_url=redis_url, data_dir=data_dir)
    app = web.Application(client_max_size=settings.max_batch_bytes)
    app[INGEST] = Ingest(settings, sources)

    async def storage(app: web.Application) -> AsyncIterator[None]:
        spool = Spool.open(
            data_dir / "spool",
            settings.spool_max_bytes,
            settings.spool_segment_bytes,
            settings.spool_fsync,
        )
        spool.start()
        writer = NodeWriter(redis_url, settings.dedupe_window, settings.redis_timeout)
        app[COMMITTER] = Committer(writer, spool, settings.redis_timeout)
        yield
        await app[COMMITTER].close()
        await spool.close()
        await writer.close()

    app.cleanup_ctx.append(storage)
    app.router.add_post("/v1/t", track)
    return app


async def track(request: web.Request) -> web.Response:
    entry = request.app[INGEST].single(await request.read(), "track", arrival_of(request))
    await request.app[COMMITTER].commit((entry,))
    return success()


def main() -> None:
    port, redis_url, sources, data_dir = sys.argv[1:5]
    app = create_minimal_app(redis_url, Sources.from_file(Path(sources)), Path(data_dir))
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(port),
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
