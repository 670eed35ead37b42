"""`--wait-replicas` on one Redis with a replica: a 200 means the replica has it, or the spool."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from gateway.constants import events_key
from gateway.http.app_keys import COMMITTER
from gateway.ops.embedded import RedisProcess
from gateway.store.entry import Entry
from gateway.store.node_writer import NodeWriter
from gateway.store.replicas import ReplicasBehind, ReplicaWait
from tests.helpers.gateway import gateway_clients
from tests.helpers.streams import read_stream

BATCH = {"batch": [{"type": "track", "event": "E", "userId": "u", "messageId": "m-1"}]}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisProcess, RedisProcess]]:
    """A master and its replica."""
    root = tmp_path_factory.mktemp("pair")
    master = RedisProcess(root / "master")
    master.start()
    replica = RedisProcess(
        root / "replica", extra_args=("--replicaof", "127.0.0.1", str(master.port))
    )
    try:
        replica.start()
        yield master, replica
    finally:
        replica.stop()
        master.stop()


@pytest.fixture
async def master(pair: tuple[RedisProcess, RedisProcess]) -> AsyncIterator[Redis]:
    """A client of the master, emptied, once the replica is in sync."""
    client = Redis.from_url(pair[0].url)
    await client.flushall()
    replica = Redis.from_url(pair[1].url)
    for _ in range(200):  # bounded: 10 s
        info = await replica.info("replication")
        if info.get("master_link_status") == "up" and await replica.dbsize() == 0:
            break
        await asyncio.sleep(0.05)
    await replica.aclose()
    yield client
    await client.aclose()


@contextlib.contextmanager
def stalled(node: RedisProcess) -> Iterator[None]:
    """`node` stopped (SIGSTOP) inside the block: a stalled link, a slow disk."""
    assert node.process is not None
    node.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        node.process.send_signal(signal.SIGCONT)


def entries(*ids: str) -> list[Entry]:
    return [Entry(events_key(0), b"{}", "web", message_id) for message_id in ids]


async def test_a_200_means_the_replica_has_it(
    pair: tuple[RedisProcess, RedisProcess], master: Redis, tmp_path: Path
) -> None:
    async with gateway_clients(pair[0].url, tmp_path / "data") as make:
        client = await make(wait_replicas=1)
        assert (await client.post("/v1/batch", json=BATCH)).status == 200
        assert client.app is not None
        assert client.app[COMMITTER].spool.empty
    replica = Redis.from_url(pair[1].url)
    try:
        assert len(await read_stream(replica, events_key(0))) == 1  # no waiting: it is there
    finally:
        await replica.aclose()


async def test_a_stalled_replica_sends_the_batch_to_the_spool_until_it_confirms(
    pair: tuple[RedisProcess, RedisProcess], master: Redis, tmp_path: Path
) -> None:
    async with gateway_clients(pair[0].url, tmp_path / "data") as make:
        client = await make(wait_replicas=1, wait_replicas_timeout=0.3)
        assert client.app is not None
        committer = client.app[COMMITTER]
        with stalled(pair[1]):
            start = time.monotonic()
            assert (await client.post("/v1/batch", json=BATCH)).status == 200
            assert time.monotonic() - start >= 0.3  # it waited for the replica, in vain
            assert not committer.spool.empty  # and the spool is the second copy
            assert committer.tally.redis_errors == {"replicas": 1}
            assert committer.tally.accepted_spool == 1
        for _ in range(100):  # bounded: 10 s
            if committer.spool.empty:
                break
            await asyncio.sleep(0.1)
        assert committer.spool.empty  # replayed once the replica confirmed it
    assert len(await read_stream(master, events_key(0))) == 1  # once: the replay was a duplicate


async def test_duplicates_another_connection_wrote_are_waited_for_too(
    pair: tuple[RedisProcess, RedisProcess], master: Redis
) -> None:
    plain = NodeWriter(pair[0].url, 3600, 2.0)
    waiting = NodeWriter(pair[0].url, 3600, 2.0, ReplicaWait(1, 0.2))
    try:
        assert await waiting.write(entries("warm-up")) == 1  # this connection wrote once
        with stalled(pair[1]):
            assert await plain.write(entries("a", "b")) == 2  # on the master only
            with pytest.raises(ReplicasBehind, match="0 of 1 replicas"):
                await waiting.write(entries("a", "b"))  # duplicates: nothing of its own
        assert await waiting.write(entries("a", "b")) == 0  # replicated now
    finally:
        await plain.close()
        await waiting.close()


async def test_waitaof_waits_for_the_replicas_fsync(
    pair: tuple[RedisProcess, RedisProcess], master: Redis
) -> None:
    writer = NodeWriter(pair[0].url, 3600, 2.0, ReplicaWait(1, 1.0, fsync=True))
    try:
        assert await writer.write(entries("a", "b")) == 2
        with stalled(pair[1]), pytest.raises(ReplicasBehind, match="0 of 1 replicas fsynced"):
            await writer.write(entries("c"))
    finally:
        await writer.close()


async def test_a_redis_without_replicas_never_confirms(redis_server: RedisProcess) -> None:
    writer = NodeWriter(redis_server.url, 3600, 2.0, ReplicaWait(1, 0.1))
    try:
        with pytest.raises(ReplicasBehind):
            await writer.write(entries("alone"))
    finally:
        await writer.close()
