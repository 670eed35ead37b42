"""`gateway serve`: run the app on one or more processes, on the embedded server if need be."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from types import FrameType

import msgspec
from aiohttp import web

from gateway.app import RUNNER_OPTIONS, create_admin_app, create_app
from gateway.control import token as admin_token
from gateway.control.app_keys import LIVE
from gateway.http import framing
from gateway.http.app_keys import METRICS
from gateway.ingest.sources import Sources
from gateway.ops import logs, multiprocess
from gateway.ops.embedded import die_with_parent, embedded_redis
from gateway.settings import Settings

log = logging.getLogger("gateway")


class PortInUse(Exception):
    """The port is held by another program (or another gateway): nothing was started."""


def serve(settings: Settings) -> int:
    """Run the gateway until SIGINT or SIGTERM; the process's exit code."""
    sources = Sources.from_file(settings.sources)  # fail before starting anything
    try:
        check_port_free(settings.host, settings.port)
        check_port_free(settings.admin_host, settings.admin_port)
    except PortInUse as exc:
        log.error("gateway: %s", exc, extra={"event": "port_in_use"})
        return 1
    mode = (
        "open mode (no sources file): every writeKey is accepted until a source is made "
        "through the admin API"
        if sources.open
        else (f"{len(sources)} sources from {settings.sources}")
    )
    log.info("gateway: %s", mode, extra={"event": "startup", "workers": settings.workers})
    settings = _admin_token(settings)
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
            settings = msgspec.structs.replace(settings, redis_url=url)
        if settings.workers == 1:
            if not run_process(settings):
                return 1
        elif not _supervise(settings):
            return 1
    log.info("gateway: stopped", extra={"event": "shutdown"})
    return 0


def _admin_token(settings: Settings) -> Settings:
    """`settings` with the admin token, made at first start when none is configured; its
    URL printed that once (on stderr, not through the log: the token is never logged)."""
    token, made = admin_token.ensure(settings.admin_token, settings.data_dir)
    host = settings.admin_host
    url = f"http://{f'[{host}]' if ':' in host else host}:{settings.admin_port}/"
    if made:
        print(f"gateway: admin API at {url}?token={token}", file=sys.stderr, flush=True)
    where = "--admin-token" if settings.admin_token else settings.data_dir / admin_token.TOKEN_FILE
    log.info("gateway: admin API on %s (token: %s)", url, where, extra={"event": "admin"})
    return msgspec.structs.replace(settings, admin_token=token)


def check_port_free(host: str, port: int) -> None:
    """Raise `PortInUse` when anyone listens on host:port already.

    The gateway's own processes share the port with SO_REUSEPORT, and so could a second
    gateway started by mistake: the kernel would then split the traffic between two
    gateways with different Redis servers and sources. A socket bound without SO_REUSEPORT
    is refused by any listener on the port, whoever it is, so binding one (and closing it)
    before the processes start tells whether the port is ours to take.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            # Like the real listener: connections of an earlier run in TIME_WAIT don't count.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise PortInUse(_bind_error(host, port, exc)) from None


def _bind_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use by another program (or another "
            "gateway); stop it or choose another --port"
        )
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def run_process(settings: Settings, reuse_port: bool = False) -> bool:
    """Serve on this process until a signal stops it; False when it could not listen.

    On SIGTERM or SIGINT it stops accepting, gives the requests in flight the grace period
    less one Redis timeout, then flushes what is buffered (to Redis within that timeout,
    else to the spool) and exits: within about `shutdown_grace` seconds.
    """
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the loop's handler reloads sources
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    _tune_gc()
    main = loop.create_task(_serve_app(settings, reuse_port))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):  # from the runner's signal handlers
        pass
    except PortInUse as exc:
        log.error("gateway: %s", exc, extra={"event": "port_in_use"})
        return False
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
    return True


async def _serve_app(settings: Settings, reuse_port: bool) -> None:
    """What `web.run_app` does, plus the gateway's connection handling (`gateway.http.framing`)."""
    app = create_app(settings)
    runner = web.AppRunner(
        app,
        handle_signals=True,
        shutdown_timeout=max(0.0, settings.shutdown_grace - settings.redis_timeout),
        keepalive_timeout=settings.idle_timeout,
        **RUNNER_OPTIONS,
    )
    cleanups = [runner.cleanup]
    try:
        await runner.setup()  # inside: a start that fails still closes what it started
        framing.json_errors(runner, app[METRICS].tally, settings.header_timeout)
        site = web.TCPSite(
            runner, settings.host, settings.port, reuse_port=reuse_port, backlog=1024
        )
        try:
            await site.start()
        except OSError as exc:  # taken between the check and now
            raise PortInUse(_bind_error(settings.host, settings.port, exc)) from None
        admin = web.AppRunner(
            create_admin_app(app), handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await admin.setup()
        cleanups.append(admin.cleanup)
        admin_site = web.TCPSite(
            admin, settings.admin_host, settings.admin_port, reuse_port=reuse_port
        )
        try:
            await admin_site.start()
        except OSError as exc:
            raise PortInUse(_bind_error(settings.admin_host, settings.admin_port, exc)) from None
        live = app[LIVE]
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, live.reload_file, "SIGHUP")
        log.info(
            "gateway: listening on http://%s:%d (pid %d)",
            settings.host,
            settings.port,
            os.getpid(),
            extra={"event": "listening"},
        )
        await asyncio.Event().wait()  # until a signal raises GracefulExit
    finally:
        for cleanup in reversed(cleanups):
            await cleanup()


CANNOT_LISTEN = 3
"""A child's exit code when it could not take the port: replacing it would not help."""
QUICK_FAILURES = 3
"""Children that die within `QUICK` seconds of their start, in a row, before the
supervisor gives up instead of restarting them in a loop."""
QUICK = 10.0


def _child(settings: Settings) -> None:
    os.setpgid(0, 0)  # Ctrl-C reaches the supervisor only, which stops the children in order
    die_with_parent()
    logs.configure(settings.log_level, settings.log_format)
    if not run_process(settings, reuse_port=True):
        raise SystemExit(CANNOT_LISTEN)


def _supervise(settings: Settings) -> bool:
    """N processes share the port (SO_REUSEPORT); a dead one is replaced, a signal stops all.

    False when the children could not start (they said why in their own log line).
    Their metrics add up through one multiprocess directory (see `gateway.ops.multiprocess`).
    """
    with multiprocess.metrics_dir() as directory:
        return _run_children(settings, directory)


def _run_children(settings: Settings, metrics_dir: os.PathLike[str]) -> bool:
    context = multiprocessing.get_context("spawn")
    stopping = False
    failed = False
    quick_failures = 0

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        log.info("gateway: stopping %d processes", len(children), extra={"event": "stopping"})
        for child in children:
            if child.is_alive():
                child.terminate()  # each child stops gracefully on SIGTERM

    children = [context.Process(target=_child, args=(settings,)) for _ in range(settings.workers)]
    started = [time.monotonic()] * len(children)

    def reload(_signum: int, _frame: FrameType | None) -> None:
        for child in children:  # each reloads its own table (`gateway.control.live`)
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    for child in children:
        _start(child)
    while not stopping:
        time.sleep(0.2)
        for index, child in enumerate(children):
            if child.is_alive() or stopping:
                continue
            multiprocess.process_dead(child.pid, metrics_dir)
            quick = time.monotonic() - started[index] < QUICK
            quick_failures = quick_failures + 1 if quick else 0
            if child.exitcode == CANNOT_LISTEN or quick_failures >= QUICK_FAILURES:
                log.error(
                    "gateway: process %s could not start (exit code %s, its reason is above); "
                    "stopping",
                    child.pid,
                    child.exitcode,
                    extra={"event": "start_failed", "exit_code": child.exitcode},
                )
                failed = True
                stop(signal.SIGTERM, None)
                break
            log.error(
                "gateway: process %s exited with %s; starting another",
                child.pid,
                child.exitcode,
                extra={"event": "process_exited", "exit_code": child.exitcode},
            )
            children[index] = context.Process(target=_child, args=(settings,))
            started[index] = time.monotonic()
            _start(children[index])
    for child in children:
        child.join(settings.shutdown_grace + 5)
        multiprocess.process_dead(child.pid, metrics_dir)
    return not failed


def _start(child: multiprocessing.process.BaseProcess) -> None:
    """Start `child` ignoring SIGHUP (inherited through exec) until its loop handles it:
    a reload forwarded while it imports must not kill it."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        child.start()
    finally:
        signal.signal(signal.SIGHUP, previous)


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
