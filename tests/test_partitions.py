"""Every partition read: the count the gateway records, and workers and status using it."""

from __future__ import annotations

import asyncio
import contextlib
import json

from redis.asyncio import Redis

from gateway.constants import RETENTION_COUNTS, all_events_keys, events_key
from gateway.store import partitions
from gateway.store.gauges import redis_families
from gateway.worker import status
from gateway.worker.consumer import Consumer
from gateway.worker.dispatch import Dispatcher
from gateway.worker.options import ConsumerOptions
from gateway.worker.partitions import PartitionWatch, partition_streams
from tests.helpers.destinations import ListDestination
from tests.helpers.gateway import MakeClient
from tests.helpers.waiting import eventually


async def test_the_gateway_records_its_partitions_at_start(
    make_client: MakeClient, redis: Redis
) -> None:
    await make_client(partitions=4)

    async def recorded() -> bool:
        return await partitions.recorded(redis) == partitions.Recorded(current=4, highest=4)

    await eventually(recorded)


async def test_fewer_partitions_later_keep_the_highest(redis: Redis) -> None:
    assert await partitions.record(redis, 8)
    assert not await partitions.record(redis, 4)

    assert await partitions.recorded(redis) == partitions.Recorded(current=4, highest=8)
    assert await partition_streams(redis, 1) == all_events_keys(8)


async def test_a_running_consumer_reads_partitions_recorded_after_it_started(
    redis: Redis,
) -> None:
    received = ListDestination("list")
    options = ConsumerOptions("g", "c", (events_key(0),), block=0.05, reclaim_idle=5)
    consumer = Consumer(redis, options, Dispatcher([received]))
    consumer._watch = PartitionWatch(redis, consumer.streams, every=0.05)
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    try:
        await partitions.record(redis, 4)
        data = json.dumps({"type": "track", "event": "E", "userId": "u", "messageId": "late"})
        await redis.xadd(events_key(3), {"data": data, "source": "web"})

        async def delivered() -> bool:
            return received.ids() == ["late"]

        await eventually(delivered)
        assert consumer.streams == all_events_keys(4)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(running, 10)


async def test_status_flags_a_partition_a_group_does_not_read_and_a_stalled_group(
    redis: Redis,
) -> None:
    await partitions.record(redis, 2)
    await redis.xadd(events_key(0), {"data": b"{}", "source": b"web"})
    await redis.xadd(events_key(1), {"data": b"{}", "source": b"web"})
    await redis.xgroup_create(events_key(0), "g", id="0")  # no consumer has ever read

    snapshot = await status.collect(redis, await partition_streams(redis, 1))

    assert snapshot.unread == [("g", events_key(1))]
    [group] = snapshot.groups
    assert (group.lag, group.live_consumers, group.stalled) == (1, 0, True)
    assert snapshot.problems() == [
        "group g does not read gateway:events:{1}: no worker of it runs",
        "group g has 1 unread and 0 pending on gateway:events:{0} and no live consumer",
    ]
    text = snapshot.render()
    assert "! group g does not read gateway:events:{1}" in text
    document = snapshot.as_json()
    assert document["unread"] == [{"group": "g", "stream": events_key(1)}]
    assert document["groups"][0]["stalled"] is True

    await redis.xreadgroup("g", "c", {events_key(0): ">"})  # a live consumer, now behind on 0
    snapshot = await status.collect(redis, await partition_streams(redis, 1))
    assert [(g.live_consumers, g.stalled) for g in snapshot.groups] == [(1, False)]


async def test_metrics_flag_a_partition_a_group_does_not_read_and_count_trimming(
    redis: Redis,
) -> None:
    await partitions.record(redis, 2)
    await redis.xadd(events_key(0), {"data": b"{}", "source": b"web"})
    await redis.xgroup_create(events_key(0), "g", id="0")
    await redis.xreadgroup("g", "c", {events_key(0): ">"})
    await redis.hincrby(RETENTION_COUNTS, "expired", 7)

    families = {f.name: f for f in await redis_families(redis, [events_key(0)], within=1.0)}

    def samples(name: str) -> dict[tuple[str, ...], float]:
        return {tuple(s.labels.values()): s.value for s in families[name].samples}

    assert samples("gateway_group_missing_partition") == {("g", events_key(1)): 1}
    assert samples("gateway_group_live_consumers") == {("g", events_key(0)): 1}
    assert samples("gateway_stream_length") == {(events_key(0),): 1, (events_key(1),): 0}
    assert samples("gateway_retention_trimmed") == {("acked",): 0, ("expired",): 7}
