"""The consumer and the re-drive in-process, against the real server: the edge cases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import cast

import pytest
from redis.asyncio import Redis

from gateway.constants import dead_letter_key, events_key, redrive_key
from gateway.worker import redrive, redrive_requests
from gateway.worker.consumer import Consumer
from gateway.worker.deadletters import DeadLetter
from gateway.worker.destinations import Result
from gateway.worker.dispatch import Dispatcher
from gateway.worker.message import Message
from gateway.worker.options import ConsumerOptions
from tests.helpers.destinations import ListDestination
from tests.helpers.streams import StreamEntry, read_stream

STREAM = events_key(0)


async def enqueue(redis: Redis, *ids: str) -> None:
    for message_id in ids:
        data = json.dumps({"type": "track", "event": "E", "userId": "u", "messageId": message_id})
        await redis.xadd(STREAM, {"data": data, "source": "web"})


async def drain(redis: Redis, *destinations: ListDestination, **options: object) -> Consumer:
    settings: dict[str, object] = {"reclaim_idle": 0.05, "block": 0.05, "max_attempts": 3}
    settings.update(options)
    consumer = Consumer(
        redis,
        ConsumerOptions("g", "c1", (STREAM,), burst=True, **settings),  # type: ignore[arg-type]
        Dispatcher(destinations),
    )
    await asyncio.wait_for(consumer.run(asyncio.Event()), 20)
    return consumer


async def dead_letters(redis: Redis) -> list[DeadLetter]:
    return [DeadLetter.from_fields(f) for _, f in await read_stream(redis, dead_letter_key("g"))]


async def test_a_failure_that_retrying_cannot_help_is_dead_lettered_at_once(redis: Redis) -> None:
    await enqueue(redis, "m1")
    refusing = ListDestination("hook", failing=True, retry=False)

    consumer = await drain(redis, refusing, max_attempts=10)

    [letter] = await dead_letters(redis)
    assert (letter.attempts, letter.error, letter.destinations) == (1, "hook: refused", ("hook",))
    assert (letter.stream, letter.source) == (STREAM, "web")
    assert consumer.stats.dead == 1
    assert (await redis.xpending(STREAM, "g"))["pending"] == 0


async def test_a_retry_goes_only_to_the_destination_that_refused(redis: Redis) -> None:
    await enqueue(redis, "m1", "m2")
    steady = ListDestination("steady")
    flaky = ListDestination("flaky", fail_times=2)

    consumer = await drain(redis, steady, flaky)

    assert steady.ids() == ["m1", "m2"]
    assert flaky.ids() == ["m1", "m2"]
    assert [m.attempt for m in flaky.received] == [3, 3]
    assert consumer.stats.failed == 4
    assert await dead_letters(redis) == []


async def test_an_entry_handed_out_too_often_is_dead_lettered_unsent(redis: Redis) -> None:
    await enqueue(redis, "m1")
    await redis.xgroup_create(STREAM, "g", id="0")
    reply = await redis.xreadgroup("g", "crashed", {STREAM: ">"})
    [[_stream, [(entry_id, _fields)]]] = cast(list[tuple[bytes, list[StreamEntry]]], reply)
    # Three workers died while delivering it: Redis counted three deliveries.
    await redis.xclaim(STREAM, "g", "crashed", 0, [entry_id], retrycount=3)
    destination = ListDestination("hook")

    await drain(redis, destination)

    assert destination.received == []
    [letter] = await dead_letters(redis)
    assert letter.attempts == 3
    assert letter.error.startswith("gave up after 3 attempts")
    assert letter.destinations == ("hook",)


async def test_an_unreadable_entry_is_dead_lettered(redis: Redis) -> None:
    await redis.xadd(STREAM, {"data": b"\xff not json", "source": "web"})
    await drain(redis, ListDestination("hook"))
    [letter] = await dead_letters(redis)
    assert (letter.error, letter.data) == ("not a JSON object", b"\xff not json")


async def test_a_group_leaves_no_consumer_behind_when_it_holds_nothing(redis: Redis) -> None:
    await enqueue(redis, "m1")
    await drain(redis, ListDestination("hook"))
    assert await redis.xinfo_consumers(STREAM, "g") == []


async def test_redrive_keeps_what_one_destination_still_refuses(redis: Redis) -> None:
    await enqueue(redis, "m1")
    await drain(redis, ListDestination("a", failing=True), ListDestination("b", failing=True))
    [letter] = await dead_letters(redis)
    assert set(letter.destinations) == {"a", "b"}

    a, b = ListDestination("a"), ListDestination("b", failing=True)
    report = await redrive.redrive(redis, "g", Dispatcher([a, b]))

    assert (report.delivered, report.failed, report.skipped) == (0, 1, 0)
    assert a.ids() == ["m1"]
    [letter] = await dead_letters(redis)
    assert letter.destinations == ("b",)
    assert letter.error == "b: refused"

    b.failing = False
    report = await redrive.redrive(redis, "g", Dispatcher([a, b]))

    assert (report.delivered, report.failed) == (1, 0)
    assert (a.ids(), b.ids()) == (["m1"], ["m1"])
    assert await dead_letters(redis) == []


async def test_redrive_skips_letters_for_destinations_not_configured(redis: Redis) -> None:
    await enqueue(redis, "m1")
    await drain(redis, ListDestination("a", failing=True))
    other = ListDestination("other")

    report = await redrive.redrive(redis, "g", Dispatcher([other]))

    assert (report.delivered, report.skipped) == (0, 1)
    assert other.received == []
    assert len(await dead_letters(redis)) == 1


class SlowDestination(ListDestination):
    """Takes `delay` seconds over its first batch, as a destination retrying in place."""

    def __init__(self, name: str, delay: float) -> None:
        super().__init__(name)
        self.delay = delay
        self.sending = asyncio.Event()

    async def send(self, batch: Sequence[Message]) -> Result:
        if not self.sending.is_set():
            self.sending.set()
            await asyncio.sleep(self.delay)
        return await super().send(batch)


async def test_a_slow_batch_is_not_taken_over_while_it_is_being_sent(redis: Redis) -> None:
    await enqueue(redis, "m1", "m2")
    # The batch takes twice the reclaim time; the heartbeat (every third of it) must keep it
    # from being taken over. A second of margin: a loaded 2-core machine stalls a loop for
    # a few hundred milliseconds at times.
    slow = SlowDestination("hook", delay=3.0)
    options = {"reclaim_idle": 1.5, "block": 0.05, "burst": True}
    first = Consumer(redis, ConsumerOptions("g", "c1", (STREAM,), **options), Dispatcher([slow]))  # type: ignore[arg-type]
    second = Consumer(redis, ConsumerOptions("g", "c2", (STREAM,), **options), Dispatcher([slow]))  # type: ignore[arg-type]

    running = asyncio.create_task(first.run(asyncio.Event()))
    await asyncio.wait_for(slow.sending.wait(), 10)
    await asyncio.wait_for(second.run(asyncio.Event()), 10)  # waits for c1's batch to be acked
    await asyncio.wait_for(running, 10)

    assert slow.ids() == ["m1", "m2"]
    assert second.stats.reclaimed == 0


async def test_a_redrive_asked_from_the_inspector_is_taken_by_a_worker(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await enqueue(redis, "m1")
    await drain(redis, ListDestination("a", failing=True))
    monkeypatch.setattr(redrive_requests, "EVERY", 0.02)
    a = ListDestination("a")
    serving = asyncio.create_task(redrive_requests.serve(redis, "g", Dispatcher([a])))
    try:
        await asyncio.sleep(0.1)
        assert a.ids() == []  # nothing asked, nothing done
        await redis.set(redrive_key("g"), "asked")
        for _ in range(200):
            if await redis.exists(f"{redrive_key('g')}:done"):
                break
            await asyncio.sleep(0.02)
    finally:
        serving.cancel()
    assert a.ids() == ["m1"]
    assert await dead_letters(redis) == []
    done = json.loads(cast(bytes, await redis.get(f"{redrive_key('g')}:done")))
    assert (done["delivered"], done["failed"], done["skipped"]) == (1, 0, 0)
    assert not await redis.exists(redrive_key("g"))
