"""The rate limit on a three-master Redis Cluster: buckets on the master of their slot,
one limit however the keys spread, no fallback to the local buckets."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import RedisCluster

from gateway.constants import RATELIMIT_PREFIX, events_key
from gateway.ingest.sources import Sources
from gateway.store.ratelimit import Limit, RateLimiter
from tests.helpers.cluster import Cluster
from tests.helpers.gateway import MakeClient


async def test_buckets_spread_over_the_masters(
    cluster: RedisCluster, cluster_server: Cluster
) -> None:
    limiter = RateLimiter(cluster_server.seed, timeout=2.0, processes=1)
    try:
        limit = Limit(rate=0.01, burst=3)
        names = [f"caller-{n}" for n in range(12)]
        rounds = [
            await asyncio.gather(*(limiter.check(name, limit) for name in names)) for _ in range(5)
        ]
        for index in range(len(names)):
            assert [decisions[index].allowed for decisions in rounds] == [True] * 3 + [False] * 2
        for index in range(len(cluster_server.nodes)):  # as after restarts: sent again
            with cluster_server.client(index) as node:
                node.script_flush()
        assert (await limiter.check("caller-new", limit)).allowed
        assert not (await limiter.check("caller-0", limit)).allowed
        assert limiter.fallbacks == 0
    finally:
        await limiter.close()
    holders = set()
    for index in range(len(cluster_server.nodes)):
        with cluster_server.client(index) as node:
            if list(node.scan_iter(match=f"{RATELIMIT_PREFIX}:*")):
                holders.add(index)
    assert len(holders) > 1  # twelve keys: on more than one master


async def test_a_master_that_forgot_the_script_charges_no_one_twice(
    cluster_server: Cluster,
) -> None:
    limiter = RateLimiter(cluster_server.seed, timeout=2.0, processes=1)
    try:
        limit = Limit(rate=0.01, burst=3)
        names = [f"forgot-{n}" for n in range(12)]  # on every master
        rounds = [await asyncio.gather(*(limiter.check(name, limit) for name in names))]
        with cluster_server.client(0) as node:  # one master restarted; the others did not
            node.script_flush()
        for _ in range(4):
            rounds.append(await asyncio.gather(*(limiter.check(name, limit) for name in names)))
        # Only the calls the forgetful master refused run again: a caller whose call
        # succeeded elsewhere is not charged a second time.
        for index in range(len(names)):
            assert [decisions[index].allowed for decisions in rounds] == [True] * 3 + [False] * 2
        assert limiter.fallbacks == 0
    finally:
        await limiter.close()


async def test_gateway_on_a_cluster_limits_intilery_tokens(
    make_gateway: MakeClient, cluster: RedisCluster, tmp_path: Path
) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[[source]]\nid = "shop"\nwrite_keys = []\n[source.intilery]\n'
        'client = "acme"\naccount = "shop"\ntokens = ["t1"]\nrate = 0.01\nburst = 5\n'
    )
    client = await make_gateway(sources=Sources.from_file(sources))
    statuses = []
    for _ in range(8):
        response = await client.post(
            "/track/acme/shop/SHOP/v1/track",
            json={"userId": "u1", "event": "Played"},
            headers={"auth-token": "t1"},
        )
        statuses.append(response.status)
    assert statuses == [200] * 5 + [429] * 3
    assert await cluster.xlen(events_key(0)) == 5
