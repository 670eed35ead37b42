"""The hot path on a Redis Cluster: one lean connection per master, writes routed by slot.

Each partition stream `gateway:events:{n}` (and its dedupe hashes, same hash tag) lives in
one slot, so one master. The writer learns which master owns which slot (`CLUSTER SLOTS`),
splits each flush by owner, and sends each part through a single-node `NodeWriter` (the same
dedupe script and pipelining as one Redis) to its master, all parts at once.

A part that comes back redirected (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`) or whose
connection failed is sent again after the slot map is learned anew, a few times; then the
error reaches the committer, which spools the batch. Sending a part again is safe: the
dedupe script skips the entries that were added the first time. A part whose replicas did
not confirm it in time (`--wait-replicas`, `ReplicasBehind`) is not sent again: its master
has it, and waiting once more would outlast the flush's timeout; the committer spools it.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import ResponseError

from gateway.store.entry import Entry
from gateway.store.node_writer import NodeWriter
from gateway.store.replicas import ReplicaWait
from gateway.store.resp import RespConnection, RespError, command

log = logging.getLogger(__name__)

ATTEMPTS = 5
"""Sends of one part before its error is raised (the committer's timeout may end it first)."""
BACKOFF = 0.02
"""Seconds before the second send of a part that was not simply moved; doubles each time."""
_REDIRECTS = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")


class ClusterWriter:
    """Adds entries to their streams on a Redis Cluster; the interface of `NodeWriter`."""

    def __init__(
        self, url: str, window: int, connect_timeout: float, wait: ReplicaWait | None = None
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError(f"a Redis Cluster is reached over TCP: {url!r}")
        self._seed = url
        self._window = window
        self._connect_timeout = connect_timeout
        self._wait = wait
        self._owners: list[str] = []
        """The address (`host:port`) of the master of each slot; empty until learned."""
        self._slots: dict[str, int] = {}
        self._writers: dict[str, NodeWriter] = {}
        self._refreshing = asyncio.Lock()
        self._generation = 0
        self.refreshes = 0
        """Times the slot map was learned, the first time included: for logs and tests."""

    @property
    def masters(self) -> list[str]:
        """The addresses of the masters owning slots, as last learned."""
        return sorted(set(self._owners))

    async def write(self, entries: Sequence[Entry]) -> int:
        """Add `entries` (in order per stream); the number added, duplicates left out.

        Raises as `NodeWriter.write` does once a part failed `ATTEMPTS` times; parts may have
        been added then, and writing all of it again adds none of them twice.
        """
        if not self._owners:
            await self._refresh(self._generation)
        added = 0
        pending = entries
        for attempt in range(ATTEMPTS):
            generation = self._generation
            parts = self._split(pending)
            results = await asyncio.gather(
                *(self._writer(node).write(part) for node, part in parts.items()),
                return_exceptions=True,
            )
            retry: list[Entry] = []
            error: BaseException | None = None
            moved_only = True
            for part, result in zip(parts.values(), results, strict=True):
                if isinstance(result, int):
                    added += result
                    continue
                if not _retryable(result):
                    raise result
                error = result
                moved_only = moved_only and str(result).startswith("MOVED")
                retry.extend(part)
            if not retry:
                return added
            assert error is not None
            if attempt == ATTEMPTS - 1:
                raise error
            log.info(
                "cluster: %d entries to send again (%s)", len(retry), str(error) or repr(error)
            )
            if not moved_only:  # a failover or a migration takes a moment
                await asyncio.sleep(BACKOFF * 2**attempt)
            await self._refresh(generation)
            pending = retry
        return added  # not reached: the last attempt returns or raises

    async def close(self) -> None:
        """Close every connection."""
        for writer in self._writers.values():
            await writer.close()
        self._writers.clear()

    def _split(self, entries: Sequence[Entry]) -> dict[str, list[Entry]]:
        owners = self._owners
        slots = self._slots
        parts: dict[str, list[Entry]] = {}
        for entry in entries:
            slot = slots.get(entry.stream)
            if slot is None:
                slot = slots[entry.stream] = key_slot(entry.stream.encode())
            parts.setdefault(owners[slot], []).append(entry)
        return parts

    def _writer(self, node: str) -> NodeWriter:
        writer = self._writers.get(node)
        if writer is None:
            url = self._node_url(node)
            writer = NodeWriter(url, self._window, self._connect_timeout, self._wait)
            self._writers[node] = writer
        return writer

    def _node_url(self, node: str) -> str:
        # The seed's scheme, credentials and options, another host and port.
        parts = urllib.parse.urlsplit(self._seed)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{node}" if userinfo else node
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    async def _refresh(self, seen: int) -> None:
        """Learn the slot map, unless someone did since generation `seen`."""
        async with self._refreshing:
            if self._generation != seen:
                return
            candidates = [*self.masters, _address(self._seed)]
            failures: list[str] = []
            for node in dict.fromkeys(candidates):
                try:
                    owners = await self._ask(node)
                except (OSError, TimeoutError, ValueError) as exc:
                    failures.append(f"{node}: {exc or type(exc).__name__}")
                    continue
                for writer in self._apply(owners):
                    await writer.close()
                return
            raise RespError(f"no node told the slot map ({'; '.join(failures)})")

    async def _ask(self, node: str) -> list[str]:
        async with asyncio.timeout(self._connect_timeout):
            connection = await RespConnection.open(self._node_url(node), self._connect_timeout)
            try:
                (reply,) = await connection.execute(command(b"CLUSTER", b"SLOTS"), 1)
            finally:
                connection.close()
        return _owners(reply, node.rpartition(":")[0].strip("[]"))

    def _apply(self, owners: list[str]) -> list[NodeWriter]:
        """Use the map `owners`; the writers of nodes that are no longer masters."""
        before = set(self._owners)
        self._owners = owners
        self._generation += 1
        self.refreshes += 1
        now = set(owners)
        if before != now:
            log.info("cluster: %d masters: %s", len(now), ", ".join(sorted(now)))
        return [self._writers.pop(gone) for gone in before - now if gone in self._writers]


def _owners(reply: Any, asked_host: str) -> list[str]:
    """The master address of every slot, from a `CLUSTER SLOTS` reply."""
    if isinstance(reply, hiredis.ReplyError) or not isinstance(reply, list):
        raise ValueError(f"CLUSTER SLOTS: {reply}")
    owners: list[str | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
    for first, last, master, *_replicas in reply:
        host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
        if host in ("", "?"):  # the node does not know its own address: the one we used
            host = asked_host
        address = f"[{host}]:{master[1]}" if ":" in host else f"{host}:{master[1]}"
        owners[first : last + 1] = [address] * (last - first + 1)
    missing = owners.count(None)
    if missing:
        raise ValueError(f"CLUSTER SLOTS: {missing} slots have no master (cluster down?)")
    return [owner for owner in owners if owner is not None]


def _address(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port or 6379}"


def _retryable(error: BaseException) -> bool:
    if isinstance(error, ResponseError):
        return str(error).startswith(_REDIRECTS)
    return isinstance(error, (OSError, TimeoutError))
