"""The writer of the hot path: one Redis node (`NodeWriter`) or a cluster (`ClusterWriter`).

Which one is decided once: by the URL (`redis+cluster://`), else by asking the server
(`gateway.store.redis_url.is_cluster`). When the server cannot be asked at start, the decision
waits for the first write that reaches it; until then writes fail and are spooled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Protocol

from gateway.store import redis_url
from gateway.store.cluster_writer import ClusterWriter
from gateway.store.entry import Entry
from gateway.store.node_writer import NodeWriter
from gateway.store.replicas import ReplicaWait

log = logging.getLogger(__name__)


class EntryWriter(Protocol):
    """What the committer and the replay write through."""

    def write(self, entries: Sequence[Entry]) -> Awaitable[int]:
        """Add `entries` at most once each; the number added. Raises if any may be missing.

        A writer may send before it returns the awaitable (`NodeWriter` does), so
        that Redis works on the entries while the caller goes on. Failures are raised by
        the awaitable, never by the call: the committer has taken the requests by then.
        """
        ...

    async def close(self) -> None:
        """Close the connections."""
        ...


def make_writer(
    url: str, cluster: bool, window: int, timeout: float, wait: ReplicaWait | None = None
) -> EntryWriter:
    """The writer for a node (`cluster` False) or a cluster at `url` (without `+cluster`);
    with `wait`, a write counts once that many replicas of each master confirmed it."""
    if cluster:
        return ClusterWriter(url, window, timeout, wait)
    return NodeWriter(url, window, timeout, wait)


async def open_writer(
    url: str, window: int, connect_timeout: float, wait: ReplicaWait | None = None
) -> tuple[EntryWriter, bool | None]:
    """The writer for `--redis-url` `url`, and whether it is a cluster (None: not known yet)."""
    target = redis_url.parse(url)
    cluster = target.cluster
    if cluster is None:
        try:
            cluster = await redis_url.is_cluster(target.url, connect_timeout)
        except (OSError, TimeoutError) as exc:
            log.warning(
                "cannot ask %s whether it is a cluster (%s): deciding once it answers",
                target.url,
                exc,
            )
            return DetectingWriter(target.url, window, connect_timeout, wait), None
    return make_writer(target.url, cluster, window, connect_timeout, wait), cluster


class DetectingWriter:
    """Asks the server whether it is a cluster on the first write that reaches it."""

    def __init__(
        self, url: str, window: int, timeout: float, wait: ReplicaWait | None = None
    ) -> None:
        self._url = url
        self._window = window
        self._timeout = timeout
        self._wait = wait
        self._writer: EntryWriter | None = None
        self._deciding = asyncio.Lock()

    async def write(self, entries: Sequence[Entry]) -> int:
        """As `EntryWriter.write`; `OSError` while the server cannot be asked."""
        writer = self._writer
        if writer is None:
            async with self._deciding:
                if self._writer is None:
                    cluster = await redis_url.is_cluster(self._url, self._timeout)
                    log.info("%s is %s", self._url, "a cluster" if cluster else "one node")
                    self._writer = make_writer(
                        self._url, cluster, self._window, self._timeout, self._wait
                    )
                writer = self._writer
        return await writer.write(entries)

    async def close(self) -> None:
        """Close the connections."""
        if self._writer is not None:
            await self._writer.close()
