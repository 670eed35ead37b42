"""`gateway serve`: run the app on one or more processes, on the embedded server if need be."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import multiprocessing
import os
import signal
import time
from types import FrameType

from aiohttp import web

from gateway.app import RUNNER_OPTIONS, create_app
from gateway.http import framing
from gateway.http.app_keys import METRICS
from gateway.ingest.sources import Sources
from gateway.ops import logs, multiprocess
from gateway.ops.embedded import die_with_parent, embedded_redis
from gateway.settings import Settings

log = logging.getLogger("gateway")


def serve(settings: Settings) -> int:
    """Run the gateway until SIGINT or SIGTERM; the process's exit code."""
    sources = Sources.from_file(settings.sources)  # fail before starting anything
    mode = (
        "open mode (no sources file): every writeKey is accepted"
        if sources.open
        else (f"{len(sources)} sources from {settings.sources}")
    )
    log.info("gateway: %s", mode, extra={"event": "startup", "workers": settings.workers})
    with contextlib.ExitStack() as stack:
        if settings.redis_url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            url = stack.enter_context(embedded_redis(settings.data_dir))
            log.info(
                "gateway: no --redis-url given; started the embedded server at %s (data in %s)",
                url,
                (settings.data_dir / "redis").resolve(),
                extra={"event": "embedded_redis"},
            )
            settings = dataclasses.replace(settings, redis_url=url)
        if settings.workers == 1:
            run_process(settings)
        else:
            _supervise(settings)
    log.info("gateway: stopped", extra={"event": "shutdown"})
    return 0


def run_process(settings: Settings, reuse_port: bool = False) -> None:
    """Serve on this process until a signal stops it.

    On SIGTERM or SIGINT it stops accepting, gives the requests in flight the grace period
    less one Redis timeout, then flushes what is buffered (to Redis within that timeout,
    else to the spool) and exits: within about `shutdown_grace` seconds.
    """
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    _tune_gc()
    main = loop.create_task(_serve_app(settings, reuse_port))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):  # from the runner's signal handlers
        pass
    finally:
        if not main.done():
            main.cancel()  # its `finally` stops the runner gracefully
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(main)
        leftovers = asyncio.all_tasks(loop)  # none once the app's cleanup ran; else stop them
        for task in leftovers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _serve_app(settings: Settings, reuse_port: bool) -> None:
    """What `web.run_app` does, plus the gateway's answers to unparseable requests."""
    app = create_app(settings)
    runner = web.AppRunner(
        app,
        handle_signals=True,
        shutdown_timeout=max(0.0, settings.shutdown_grace - settings.redis_timeout),
        **RUNNER_OPTIONS,
    )
    try:
        await runner.setup()  # inside: a start that fails still closes what it started
        framing.json_errors(runner, app[METRICS].tally)
        site = web.TCPSite(
            runner, settings.host, settings.port, reuse_port=reuse_port, backlog=1024
        )
        await site.start()
        log.info(
            "gateway: listening on http://%s:%d (pid %d)",
            settings.host,
            settings.port,
            os.getpid(),
            extra={"event": "listening"},
        )
        await asyncio.Event().wait()  # until a signal raises GracefulExit
    finally:
        await runner.cleanup()


def _child(settings: Settings) -> None:
    os.setpgid(0, 0)  # Ctrl-C reaches the supervisor only, which stops the children in order
    die_with_parent()
    logs.configure(settings.log_level, settings.log_format)
    run_process(settings, reuse_port=True)


def _supervise(settings: Settings) -> None:
    """N processes share the port (SO_REUSEPORT); a dead one is replaced, a signal stops all.

    Their metrics add up through one multiprocess directory (see `gateway.ops.multiprocess`).
    """
    with multiprocess.metrics_dir() as directory:
        _run_children(settings, directory)


def _run_children(settings: Settings, metrics_dir: os.PathLike[str]) -> None:
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        log.info("gateway: stopping %d processes", len(children), extra={"event": "stopping"})
        for child in children:
            if child.is_alive():
                child.terminate()  # each child stops gracefully on SIGTERM

    children = [context.Process(target=_child, args=(settings,)) for _ in range(settings.workers)]
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.start()
    while not stopping:
        time.sleep(0.2)
        for index, child in enumerate(children):
            if not child.is_alive() and not stopping:
                log.error(
                    "gateway: process %s exited with %s; starting another",
                    child.pid,
                    child.exitcode,
                    extra={"event": "process_exited", "exit_code": child.exitcode},
                )
                multiprocess.process_dead(child.pid, metrics_dir)
                children[index] = context.Process(target=_child, args=(settings,))
                children[index].start()
    for child in children:
        child.join(settings.shutdown_grace + 5)
        multiprocess.process_dead(child.pid, metrics_dir)


GC_YOUNG_THRESHOLD = 20_000
"""Allocations between young collections (CPython's default is 700)."""


def _tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a server that allocates per request.

    Each request allocates a few hundred containers (the decoded message) that reference
    counting frees, yet CPython's default runs a young collection every 700 allocations,
    walking whatever is alive at that moment: requests in flight, batches waiting for
    Redis. Measured under load, that was about 6 µs a request, and the full collections
    walking the modules' objects about 3 µs more. Freezing what exists at startup takes it
    out of every collection, and a higher threshold makes the young collections rarer; the
    memory it costs is bounded by the threshold (cycles are rare on the hot path).
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
