"""Losing a machine under load: a master's replica stalls, the master dies, the replica takes over.

The scenario of issue 25, on a cluster of three masters with a replica each
(`start_cluster(replicas=True)`): clients send `track` messages through a gateway; the
replica of one master is stopped (`SIGSTOP`: a stalled link, a slow disk) while a burst is
written to the master (see `BURST`), the master is killed (`SIGKILL`) while its replica
lags, the replica resumes and is promoted. Then the
old master comes back (as the new one's replica), and the gateway's spool drains. What was
answered `200` and what the cluster holds are returned for the caller to compare:
`tests/cluster/test_failover.py` with `--wait-replicas 1`, and by hand without it
(docs/redis-cluster.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from redis import Redis as SyncRedis
from redis.asyncio import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError

from gateway.http.app_keys import COMMITTER
from gateway.ops.embedded import RedisProcess
from tests.helpers.cluster import Cluster, read_partitions, track
from tests.helpers.gateway import gateway_clients

SENDERS = 8
STALL = 1.5
"""Seconds the replica is stopped before its master is killed (the issue's stall)."""
BURST = 48 * 1024 * 1024
"""Bytes written to the master as its replica stops. What a master sends a stopped replica
waits in the kernel's socket buffers (autotuned: from a few hundred KB to tens of MB on
loopback) and reaches it when it resumes, even with its master dead; how much of the stall
that covers depends on the load and the machine. A burst larger than the buffers fills them
first, so that the messages of the stall wait in the master's memory, as they do when a stall
outlasts the buffers of a busy link, and are lost with it unless the gateway waited."""


@dataclasses.dataclass
class Outcome:
    """What the clients were told, and what the cluster holds once the spool drained."""

    answered: set[str]
    """messageIds answered 200."""
    found: dict[int, list[str]]
    """messageIds in each partition."""
    statuses: dict[int, int]
    """Answers by status; 0 counts requests that got no answer."""
    promoted_after: float
    """Seconds from the master's death until its replica was a master."""

    @property
    def stored(self) -> list[str]:
        return [message_id for ids in self.found.values() for message_id in ids]

    @property
    def lost(self) -> set[str]:
        """Answered 200, and not in the cluster."""
        return self.answered - set(self.stored)


async def lose_a_master(
    cluster: Cluster,
    data_dir: Path,
    partitions: int,
    killed: asyncio.Event | None = None,
    **settings: Any,
) -> Outcome:
    """Run the scenario on `cluster` with a gateway of `settings`; its outcome.

    `killed` is set once the master is killed (a worker may start reading then: one that
    reads before adds to the replication traffic, which makes the kernel's socket buffers
    grow, and then they hold more of what the stall sends: see `PADDING`).
    """
    master, replica = cluster.nodes[0], cluster.replicas[0]
    answered: set[str] = set()
    statuses: dict[int, int] = {}
    stop = asyncio.Event()
    async with gateway_clients(cluster.seed, data_dir) as make:
        client = await make(partitions=partitions, **settings)

        async def send(first: int) -> None:
            n = first
            while not stop.is_set():
                message = track(n)
                n += SENDERS
                status = await _post(client, message)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    answered.add(message["messageId"])

        senders = [asyncio.create_task(send(k)) for k in range(SENDERS)]
        try:
            await asyncio.sleep(1.0)
            _signal(replica, signal.SIGSTOP)
            try:
                await asyncio.to_thread(_burst, master)
                await asyncio.sleep(STALL)
                master.kill()
                died = time.monotonic()
                if killed is not None:
                    killed.set()
            finally:
                _signal(replica, signal.SIGCONT)
            await _until(lambda: _role(replica) == "master", 20)
            promoted_after = time.monotonic() - died
            await asyncio.sleep(1.0)  # load on the promoted master
        finally:
            stop.set()
            await asyncio.gather(*senders)
        # The old master comes back as the replica of the promoted one: with
        # --wait-replicas 1 that master can confirm writes again, and the spool drains.
        await asyncio.to_thread(master.start)
        await _until(lambda: _role(master) == "slave" and _linked(master), 20)
        assert client.app is not None
        spool = client.app[COMMITTER].spool
        await _until(lambda: spool.empty, 30)
    redis = RedisCluster(host="127.0.0.1", port=replica.port)
    try:
        found = await read_partitions(redis, partitions)
    finally:
        await redis.aclose()
    return Outcome(answered, found, statuses, promoted_after)


async def _post(client: TestClient[Any, Any], message: dict[str, Any]) -> int:
    try:
        async with asyncio.timeout(10):
            response = await client.post("/v1/track", json=message)
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


def _burst(master: RedisProcess) -> None:
    """`BURST` bytes written to `master`, in a key of one of its slots (but no stream's)."""
    with SyncRedis(host="127.0.0.1", port=master.port) as client:
        slots = client.execute_command("CLUSTER SLOTS")
        first, last = next((s[0], s[1]) for s in slots if int(s[2][1]) == master.port)
        key = next(
            k for n in range(10_000) if first <= key_slot(k := f"burst:{n}".encode()) <= last
        )
        client.set(key, b"x" * BURST)


def _signal(node: RedisProcess, number: signal.Signals) -> None:
    assert node.process is not None
    node.process.send_signal(number)


def _info(node: RedisProcess) -> dict[str, Any]:
    with SyncRedis(host="127.0.0.1", port=node.port, socket_timeout=1) as client:
        info: dict[str, Any] = client.info("replication")
        return info


def _role(node: RedisProcess) -> str | None:
    with contextlib.suppress(RedisError, OSError):
        return str(_info(node)["role"])
    return None


def _linked(node: RedisProcess) -> bool:
    with contextlib.suppress(RedisError, OSError):
        return _info(node).get("master_link_status") == "up"
    return False


async def _until(done: Any, limit: float) -> None:
    """Poll `done()` (in a thread: it may block) until true; fail after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not await asyncio.to_thread(done):
        if time.monotonic() > deadline:
            raise AssertionError(f"not done after {limit:g}s: {done}")
        await asyncio.sleep(0.1)
