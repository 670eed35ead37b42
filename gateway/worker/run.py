"""The worker commands' async bodies: connect, run, report, close."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import msgspec
from redis.exceptions import RedisClusterException, RedisError

from gateway.ops import tasks
from gateway.ops.tasks import running
from gateway.store.redis_client import AnyRedis
from gateway.store.retention import Retention, Trimmer
from gateway.worker import deadletters, metrics, redrive, redrive_requests, status
from gateway.worker.connection import connect
from gateway.worker.consumer import Consumer
from gateway.worker.destinations import Destination
from gateway.worker.dispatch import Dispatcher
from gateway.worker.options import ConsumerOptions
from gateway.worker.partitions import partition_streams, say_if_different
from gateway.worker.regulation_jobs import RegulationJobs

log = logging.getLogger("gateway.worker")

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())  # type: ignore[arg-type]


async def worker(
    url: str,
    partitions: int,
    destinations: Sequence[Destination],
    options: ConsumerOptions,
    metrics_address: tuple[str, int] | None = None,
    retention: Retention | None = None,
) -> int:
    """`gateway worker`: deliver until SIGTERM/SIGINT (or drained, in burst mode).

    With `metrics_address` (host, port), `/metrics` is served there while it runs. With
    `retention`, it takes its turn at trimming the streams (`gateway.store.retention`).
    """
    dispatcher = Dispatcher(destinations)
    redis: AnyRedis | None = None
    stop = asyncio.Event()
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("worker: second %s: stopping now", signal.Signals(signum).name)
            if main is not None:
                main.cancel()  # the batch in hand stays pending; another worker retries it
            return
        log.info(
            "worker: %s: finishing the batch in hand, then stopping",
            signal.Signals(signum).name,
        )
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        found = await _retrying(lambda: _open(url, partitions), stop)
        if found is None:
            return 0
        redis, streams = found
        options = dataclasses.replace(options, streams=streams)
        await say_if_different(redis, partitions, list(streams))
        for destination in destinations:
            destination.bind(options.consumer)
        log.info(
            "worker: consumer %s of group %s on %d partition(s): %s; destinations: %s; "
            "batches of %d, retry after %gs idle, dead letter after %d attempts%s",
            options.consumer,
            options.group,
            len(streams),
            ", ".join(streams),
            ", ".join(d.describe() for d in destinations),
            options.batch_size,
            options.reclaim_idle,
            options.max_attempts,
            " (burst: exit when drained)" if options.burst else "",
            extra={"event": "startup", "group": options.group, "consumer": options.consumer},
        )
        consumer = Consumer(redis, options, dispatcher)
        async with contextlib.AsyncExitStack() as stack:
            if retention is not None and not options.burst:
                owner = f"worker-{options.group}-{options.consumer}"
                trimmer = Trimmer(redis, retention, partitions, owner)
                await stack.enter_async_context(tasks.running(trimmer.run()))
            if metrics_address is not None:
                host, port = metrics_address
                await stack.enter_async_context(
                    metrics.serving(
                        host, port, consumer.stats, options.group, redis, consumer.streams
                    )
                )
                log.info(
                    "worker: metrics on http://%s:%d/metrics",
                    host,
                    port,
                    extra={"event": "metrics_listening"},
                )
            jobs = RegulationJobs(redis, streams, options.group, options.consumer, destinations)
            await stack.enter_async_context(running(jobs.run(stop)))
            if not options.burst:
                asked = redrive_requests.serve(redis, options.group, dispatcher)
                await stack.enter_async_context(running(asked))
            stats = await consumer.run(stop)
        log.info(
            "worker: stopped: %s",
            stats.line(),
            extra={"event": "shutdown", "group": options.group, **dataclasses.asdict(stats)},
        )
        return 0
    except asyncio.CancelledError:
        return 130
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await dispatcher.close()
        if redis is not None:
            await redis.aclose()


async def _open(url: str, partitions: int) -> tuple[AnyRedis, tuple[str, ...]]:
    """A client of `url` (a cluster client if it is one) and the partition streams."""
    redis = await connect(url)
    try:
        return redis, tuple(await partition_streams(redis, partitions))
    except BaseException:
        await redis.aclose()
        raise


async def _retrying(make: Callable[[], Awaitable[T]], stop: asyncio.Event) -> T | None:
    # A worker may start before Redis does; wait for it rather than exit.
    while True:
        try:
            return await make()
        except (RedisError, RedisClusterException, OSError) as exc:
            log.warning(
                "worker: Redis is not reachable (%s); trying again in 1s",
                exc,
                extra={"event": "redis_down"},
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if stop.is_set():
            return None


async def show_status(url: str, partitions: int, as_json: bool) -> int:
    """`gateway status`."""
    redis = await connect(url)
    try:
        streams = await partition_streams(redis, partitions)
        snapshot = await status.collect(redis, streams)
    finally:
        await redis.aclose()
    if as_json:
        sys.stdout.write(msgspec.json.encode(snapshot.as_json()).decode() + "\n")
    else:
        sys.stdout.write(snapshot.render() + "\n")
    return 0


async def list_dead_letters(url: str, group: str, limit: int) -> int:
    """`gateway dead-letters list`: one JSON line per dead letter."""
    redis = await connect(url)
    try:
        letters = await deadletters.read(redis, group, limit)
    finally:
        await redis.aclose()
    for entry_id, letter in letters:
        line = {
            "dead_letter_id": entry_id,
            "stream": letter.stream,
            "id": letter.id,
            "attempts": letter.attempts,
            "destinations": list(letter.destinations),
            "error": letter.error,
            "failed_at": letter.failed_at,
            "source": letter.source,
            "data": _json_or_text(letter.data),
        }
        sys.stdout.write(msgspec.json.encode(line).decode() + "\n")
    return 0


async def redrive_dead_letters(
    url: str,
    group: str,
    destinations: Sequence[Destination],
    batch_size: int,
    limit: int | None,
) -> int:
    """`gateway dead-letters redrive`: 0 when every dead letter tried was delivered."""
    dispatcher = Dispatcher(destinations)
    redis = await connect(url)
    try:
        report = await redrive.redrive(redis, group, dispatcher, batch_size, limit)
    finally:
        await dispatcher.close()
        await redis.aclose()
    sys.stdout.write(f"re-drove the dead letters of group {group}: {report.line()}\n")
    return 0 if report.failed == 0 else 1


def _json_or_text(data: bytes) -> object:
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return data.decode(errors="replace")
