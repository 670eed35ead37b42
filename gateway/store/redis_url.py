"""What `--redis-url` points at: one Redis node, or a Redis Cluster.

`redis+cluster://host:port` (or `rediss+cluster://` with TLS) says it is a cluster: the
gateway starts without asking, even while the cluster is down. A plain `redis://` or
`rediss://` URL is asked `INFO cluster` when first reached: `cluster_enabled:1` means a
cluster. Either way the host is one node of the cluster (any master or replica), from
which the others are found.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from gateway.store.resp import RespConnection, command

log = logging.getLogger(__name__)

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


@dataclasses.dataclass(frozen=True, slots=True)
class RedisTarget:
    """A `--redis-url`, understood."""

    url: str
    """The URL with the `+cluster` taken out of its scheme: what clients connect to."""
    cluster: bool | None
    """True when the URL says cluster; None when only the server can tell."""


def parse(url: str) -> RedisTarget:
    """Split the cluster marker off `url`."""
    scheme, sep, rest = url.partition("://")
    plain = _CLUSTER_SCHEMES.get(scheme.lower())
    if sep and plain is not None:
        return RedisTarget(f"{plain}://{rest}", True)
    if scheme.lower() == "unix":
        return RedisTarget(url, False)  # cluster nodes talk TCP; a socket is one node
    return RedisTarget(url, None)


async def is_cluster(url: str, connect_timeout: float) -> bool:
    """Ask the node of `url` whether it is part of a cluster; `OSError` if unreachable."""
    target = parse(url)
    if target.cluster is not None:
        return target.cluster
    async with asyncio.timeout(connect_timeout):
        connection = await RespConnection.open(target.url, connect_timeout)
        try:
            (reply,) = await connection.execute(command(b"INFO", b"cluster"), 1)
        finally:
            connection.close()
    if not isinstance(reply, bytes):
        # INFO refused (an ACL): take it for one node; `redis+cluster://` says otherwise.
        log.warning("%s refused INFO (%s): taking it for a single node", target.url, reply)
        return False
    return b"cluster_enabled:1" in reply
