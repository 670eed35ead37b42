"""The hot path's writer on one Redis node: the dedupe script's calls, one pipeline a flush.

It talks to Redis over one lean pipelined connection (`gateway.store.resp`), and adds
entries through the dedupe script (`gateway.store.dedupe_script`), so an entry written
twice (a client's retry, a replay) lands once. With `--wait-replicas`, the pipeline ends
with a `WAIT` for the replicas (`gateway.store.replicas`). On a Redis Cluster,
`ClusterWriter` sends each master its part through one of these.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

import hiredis
from redis.exceptions import ResponseError

from gateway.store import dedupe_script, lua
from gateway.store.dedupe_script import DEDUPE, bucket_seconds
from gateway.store.entry import Entry
from gateway.store.replicas import ReplicaWait
from gateway.store.resp import RespConnection


class NodeWriter:
    """Adds entries to their streams, skipping recent duplicates, in one pipeline per call.

    The hot path's cost per message is mostly here. Several calls may be in flight on its
    connection at once.
    """

    def __init__(
        self, url: str, window: int, connect_timeout: float, wait: ReplicaWait | None = None
    ) -> None:
        self._url = url
        self._wait = wait
        self._window = b"%d" % window
        self._span = b"%d" % bucket_seconds(window)
        self._connect_timeout = connect_timeout
        self._connection: RespConnection | None = None
        self._connecting = asyncio.Lock()

    def write(self, entries: Sequence[Entry]) -> Awaitable[int]:
        """Add `entries` (in order per stream); the number added, duplicates left out.

        On an open connection the pipeline is sent before this returns (the committer
        relies on it), and the awaitable only waits for the replies.

        The awaitable raises `ResponseError` when Redis refuses a part, `OSError` when the
        connection fails; parts may have been added then, and writing all of it again adds
        none of them twice. With a `ReplicaWait`, it raises `ReplicasBehind` when the
        replicas did not confirm them in time (Redis has them).
        """
        calls = dedupe_script.calls(entries, self._window, self._span)
        if self._wait is not None:
            calls.append(self._wait.command)  # its reply is the pipeline's last
        connection = self._open_connection()
        if connection is None:
            return self._added(entries, calls, self._run(calls))  # connects first
        sent = connection.send(b"".join(calls), len(calls))
        return self._added(entries, calls, connection.replies(sent))

    async def _added(
        self, entries: Sequence[Entry], calls: list[bytes], replies: Awaitable[list[Any]]
    ) -> int:
        results = await replies
        wait = self._wait
        waited = results.pop() if wait is not None else None
        rerun = False
        # Looked for here first: no coroutine per flush for what is rare.
        if any(lua.forgotten(result) for result in results):
            # Other errors stay: a cluster node may own some of the slots and not others.
            results = await lua.rerun_forgotten(calls, results, self._load_and_run)
            rerun = True
        for result in results:
            if isinstance(result, hiredis.ReplyError):
                raise ResponseError(str(result))
        added = sum(int(result) for result in results)
        if wait is not None:
            wait.check(waited)  # behind on this connection's own writes: no need to look on
            if rerun or added < len(entries):
                # The wait did not cover the rerun's writes, or the duplicates' writes were
                # another connection's: wait again, behind a write of this one.
                wait.check(await self._wait_again(wait, entries[0].stream))
        return added

    async def _wait_again(self, wait: ReplicaWait, stream: str) -> Any:
        """The reply of a `WAIT` behind a write of this connection to `stream`'s slot."""
        marked, waited = await self._run([wait.mark(stream), wait.command])
        if isinstance(marked, hiredis.ReplyError):
            raise ResponseError(str(marked))
        return waited

    async def close(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            self._connection.close()

    async def _load_and_run(self, calls: list[bytes]) -> list[Any]:
        """`calls` behind `SCRIPT LOAD`, in one pipeline; their replies."""
        return (await self._run([DEDUPE.load, *calls]))[1:]

    async def _run(self, calls: list[bytes]) -> list[Any]:
        connection = await self._connect()
        return await connection.execute(b"".join(calls), len(calls))

    async def _connect(self) -> RespConnection:
        connection = self._open_connection()
        if connection is not None:
            return connection
        async with self._connecting:
            connection = self._open_connection()
            if connection is None:
                connection = await RespConnection.open(self._url, self._connect_timeout)
                self._connection = connection
            return connection

    def _open_connection(self) -> RespConnection | None:
        """The connection, unless there is none yet or it failed."""
        connection = self._connection
        return None if connection is None or connection.closed else connection
