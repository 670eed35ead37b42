"""Trimming the partition streams, against the real server: what goes, what stays, who trims."""

from __future__ import annotations

import logging
import time

import pytest
from redis.asyncio import Redis

from gateway.constants import RETENTION_LEASE, events_key
from gateway.store import partitions, retention
from gateway.store.retention import Retention, Trimmer
from tests.helpers.streams import entry_ids, read_group

S0, S1 = events_key(0), events_key(1)
NOW = Retention(acked=0, max_age=0)
"""Trim what every group acknowledged at once; never by age."""


async def fill(redis: Redis, stream: str, count: int, age: float = 0.0) -> list[str]:
    """`count` entries, added `age` seconds in the past (explicit ids); their ids."""
    base = int((time.time() - age) * 1000)
    ids = []
    for n in range(count):
        ids.append(f"{base}-{n}")
        await redis.xadd(stream, {"data": b"{}", "source": b"web"}, id=ids[-1])
    return ids


async def test_only_what_every_group_acknowledged_goes(redis: Redis) -> None:
    ids = await fill(redis, S0, 10)
    await redis.xgroup_create(S0, "g", id="0")
    await redis.xgroup_create(S0, "h", id="0")
    taken = await read_group(redis, S0, "g", 6)
    await redis.xack(S0, "g", *taken[:2], *taken[3:])  # ids[2] stays pending in g
    await redis.xack(S0, "h", *await read_group(redis, S0, "h", 8))

    done = await retention.trim(redis, [S0], NOW)

    assert (done.acked, done.expired) == (2, 0)
    assert await entry_ids(redis, S0) == ids[2:]  # pending in g, then what g has not read
    assert await retention.counts(redis) == retention.Trimmed(acked=2, expired=0)


async def test_a_group_that_read_everything_frees_everything(redis: Redis) -> None:
    await fill(redis, S0, 5)
    await redis.xgroup_create(S0, "g", id="0")
    await redis.xack(S0, "g", *await read_group(redis, S0, "g", 5))

    await retention.trim(redis, [S0], NOW)

    assert await redis.xlen(S0) == 0


async def test_acknowledged_entries_stay_for_the_retention_time(redis: Redis) -> None:
    old = await fill(redis, S0, 3, age=100)
    new = await fill(redis, S0, 3)
    await redis.xgroup_create(S0, "g", id="0")
    await redis.xack(S0, "g", *await read_group(redis, S0, "g", 6))

    await retention.trim(redis, [S0], Retention(acked=50, max_age=0))

    assert await entry_ids(redis, S0) == new
    assert old[0] not in await entry_ids(redis, S0)


async def test_what_a_stopped_group_has_not_read_stays_until_the_maximum_age(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    old = await fill(redis, S0, 4, age=100)
    new = await fill(redis, S0, 4, age=10)
    await redis.xgroup_create(S0, "live", id="0")
    await redis.xgroup_create(S0, "stopped", id="0")
    await redis.xack(S0, "live", *await read_group(redis, S0, "live", 8))

    await retention.trim(redis, [S0], Retention(acked=0, max_age=1000))
    assert await entry_ids(redis, S0) == old + new  # "stopped" read none of it

    with caplog.at_level(logging.WARNING, "gateway.store.retention"):
        done = await retention.trim(redis, [S0], Retention(acked=0, max_age=50))

    assert (done.acked, done.expired) == (0, 4)
    assert await entry_ids(redis, S0) == new
    assert "trimmed 4 entries of gateway:events:{0} older than --retention-max-age 50s" in (
        caplog.text
    )
    assert "some consumer group had not acknowledged" in caplog.text
    assert (await retention.counts(redis)).expired == 4


async def test_a_partition_a_group_does_not_read_yet_is_kept(redis: Redis) -> None:
    await fill(redis, S0, 3)
    kept = await fill(redis, S1, 3)
    await redis.xgroup_create(S0, "g", id="0")
    await redis.xack(S0, "g", *await read_group(redis, S0, "g", 3))

    await retention.trim(redis, [S0, S1], NOW)

    assert await redis.xlen(S0) == 0
    assert await entry_ids(redis, S1) == kept  # no worker of g has created it there yet


async def test_with_no_group_at_all_the_maximum_age_holds(redis: Redis) -> None:
    await fill(redis, S0, 2, age=100)
    new = await fill(redis, S0, 2)

    done = await retention.trim(redis, [S0], Retention(acked=0, max_age=50))

    assert done.expired == 2
    assert await entry_ids(redis, S0) == new
    assert (await retention.trim(redis, [S0], NOW)).expired == 0  # 0: forever


async def test_one_process_trims_at_a_time(redis: Redis) -> None:
    await partitions.record(redis, 2)
    await fill(redis, S1, 3, age=100)
    policy = Retention(acked=0, max_age=50)
    first = Trimmer(redis, policy, 1, "first")
    second = Trimmer(redis, policy, 1, "second")

    assert await first.step() == retention.Trimmed(acked=0, expired=3)  # every recorded one
    assert await second.step() is None
    assert await first.lease.holder() == "first"
    assert 0 < await redis.pttl(RETENTION_LEASE) <= 3 * policy.every * 1000

    await first.lease.release()
    assert await second.step() is not None
    assert await first.step() is None


async def test_a_pending_count_acknowledged_since_it_was_read_falls_back_to_the_last_delivered(
    redis: Redis,
) -> None:
    ids = await fill(redis, S0, 4)
    await redis.xgroup_create(S0, "g", id="0")
    await read_group(redis, S0, "g", 3)
    stale = await redis.xinfo_groups(S0)  # 3 pending
    await redis.xack(S0, "g", *ids[:3])

    done = await retention.trim_stream(redis, S0, stale, {"g"}, NOW, int(time.time() * 1000))

    assert done.acked == 3
    assert await entry_ids(redis, S0) == ids[3:]
