"""Acknowledged means replicated: the `WAIT` that ends each flush's pipeline to a master.

With `--wait-replicas N`, a writer appends one `WAIT N timeout` (or `WAITAOF 0 N timeout`
with `--wait-replicas-fsync`) to the pipeline it sends a master, behind the flush's script
calls: Redis answers it once N replicas have acknowledged every write this connection made,
so a flush costs one replication round trip more, not one client round trip more, and its
requests are answered only then. Fewer than N within the timeout raises `ReplicasBehind`,
and the committer spools the batch (the master has it; the spool is the second copy until
replay, through the same wait, sees it replicated).

`WAIT` counts this connection's own writes only. A flush whose entries were all duplicates
wrote nothing, yet the writes it found may be another connection's, not replicated yet (a
flush that failed, spooled, and is now replayed): then `mark` writes one small key of the
partition's slot, and that write is waited for. See docs/durability.md.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.exceptions import RedisError, ResponseError

from gateway.constants import replication_mark
from gateway.store.resp import command


class ReplicasBehind(RedisError):
    """A master took the writes, but fewer replicas than asked confirmed them in time."""

    metric_kind = "replicas"
    """The `kind` of `gateway_redis_errors_total` (`gateway.ops.tally`)."""


class ReplicaWait:
    """How many replicas must confirm a flush's writes, within how long; its RESP command."""

    def __init__(self, replicas: int, timeout: float, fsync: bool = False) -> None:
        if replicas < 1:
            raise ValueError("a wait needs at least one replica")
        self.replicas = replicas
        self.timeout = timeout
        self.fsync = fsync
        milliseconds = b"%d" % max(1, round(timeout * 1000))
        count = b"%d" % replicas
        self.command = (
            command(b"WAITAOF", b"0", count, milliseconds)
            if fsync
            else command(b"WAIT", count, milliseconds)
        )
        """Sent behind a flush's writes, on the same connection."""

    def mark(self, stream: str) -> bytes:
        """A write to `stream`'s slot that Redis always replicates, for `WAIT` to wait on."""
        return command(b"SET", replication_mark(stream).encode(), b"1")

    def check(self, reply: Any) -> None:
        """Raise unless `reply` (to `command`) counts enough replicas."""
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))  # an old server without WAITAOF, a replica
        confirmed = int(reply[1] if self.fsync else reply)
        if confirmed < self.replicas:
            what = "fsynced" if self.fsync else "acknowledged"
            raise ReplicasBehind(
                f"{confirmed} of {self.replicas} replicas {what} the writes "
                f"within {self.timeout:g}s"
            )


def replica_wait(replicas: int, timeout: float, fsync: bool) -> ReplicaWait | None:
    """The wait of `--wait-replicas` and its options; None for 0 (the master's answer is enough)."""
    return ReplicaWait(replicas, timeout, fsync) if replicas else None
