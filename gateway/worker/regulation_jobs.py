"""A worker's share of the regulations: deleting a subject's messages from the streams, the
dead letters and its destinations, and collecting them for an access (docs/regulations.md).

Each store is a step with its own status in Redis. A worker takes a step under a lease
(renewed while it works), records its progress as it goes (the stream and the last entry
it went over), and its end. A worker killed half-way leaves the step RUNNING under a lease
that expires; the next worker to look (or the same one restarted under its consumer name,
at once) takes it again and goes on from the recorded progress. Every step is safe to do
twice: what was deleted is not there to delete again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from redis.exceptions import RedisClusterException, RedisError

from gateway.ops.tasks import cancel
from gateway.store.redis_client import AnyRedis
from gateway.store.regulation_records import (
    DESTINATION,
    DONE,
    STREAMS,
    Capabilities,
    Regulation,
    Step,
)
from gateway.store.regulations import RegulationStore
from gateway.worker.destinations import Destination
from gateway.worker.regulation_streams import StreamSweep
from gateway.worker.subject import Subject

log = logging.getLogger("gateway.worker")


class RegulationJobs:
    """Finds pending regulations and does the steps this worker can."""

    def __init__(
        self,
        redis: AnyRedis,
        streams: Sequence[str],
        group: str,
        consumer: str,
        destinations: Sequence[Destination],
        lease: float = 30.0,
        poll: float = 1.0,
    ) -> None:
        self.store = RegulationStore(redis)
        self.sweep = StreamSweep(redis, streams)
        self.group = group
        self.consumer = consumer
        self.destinations = {d.name: d for d in destinations}
        self.lease = lease
        self.poll = poll

    async def register(self) -> None:
        """Tell the API what this worker's destinations can do."""
        now = time.time()
        await self.store.register(
            {
                name: Capabilities(
                    kind=d.kind or type(d).__qualname__,
                    delete=d.can_delete,
                    access=d.can_access,
                    group=self.group,
                    seenAt=now,
                )
                for name, d in self.destinations.items()
            }
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Register, then look for work every `poll` seconds until `stop`; Redis errors are
        logged and tried again."""
        registered = False
        while not stop.is_set():
            try:
                if not registered:
                    await self.register()
                    registered = True
                await self.once()
            except (RedisError, RedisClusterException, OSError) as exc:
                log.warning("worker: regulations: Redis error (%s); trying again", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll)

    async def once(self) -> None:
        """Do every step this worker can of every pending regulation."""
        for regulation_id in await self.store.pending():
            found = await self.store.get(regulation_id)
            if found is None:
                await self.store.done(regulation_id)
                continue
            regulation, steps = found
            for name, step in steps.items():
                if step.status not in DONE and self._mine(name):
                    await self._step(regulation, name, step)
            found = await self.store.get(regulation_id)
            if found is not None and all(s.status in DONE for s in found[1].values()):
                await self.store.done(regulation_id, regulation.accessTtl)
                log.info(
                    "worker: regulation %s (%s) done",
                    regulation_id,
                    regulation.regulationType,
                    extra={"event": "regulation_done", "regulation": regulation_id},
                )

    def _mine(self, name: str) -> bool:
        return name == STREAMS or name.removeprefix(DESTINATION) in self.destinations

    async def _step(self, regulation: Regulation, name: str, step: Step) -> None:
        if not await self.store.lease(regulation.id, name, self.consumer, self.lease):
            return  # another worker has it
        renewing = asyncio.create_task(self._renew(regulation.id, name))
        try:
            running = Step(
                status="RUNNING", updatedAt=time.time(), cursor=step.cursor, count=step.count
            )
            await self.store.set_step(regulation.id, name, running)
            try:
                outcome = await self._do(regulation, name, running)
            except (RedisError, RedisClusterException):
                raise  # left RUNNING: tried again once Redis answers
            except Exception as exc:  # a destination's failure is the step's, not the worker's
                log.warning("worker: regulation %s: %s failed: %s", regulation.id, name, exc)
                outcome = Step(status="FAILED", detail=str(exc)[:500], count=running.count)
            outcome.updatedAt = outcome.finishedAt = time.time()
            await self.store.set_step(regulation.id, name, outcome)
        finally:
            await cancel(renewing)
            with contextlib.suppress(RedisError, RedisClusterException):
                await self.store.release(regulation.id, name, self.consumer)

    async def _do(self, regulation: Regulation, name: str, running: Step) -> Step:
        subject = Subject(
            regulation=regulation.id,
            regulation_type=regulation.regulationType,
            subject_type=regulation.subjectType,
            ids=frozenset(regulation.subjectIds),
            source=regulation.sourceId,
        )
        access = regulation.regulationType == "ACCESS"
        if name == STREAMS:
            if access:
                found = await self.sweep.collect(subject)
                for file, data in found.items():
                    await self.store.put_access(regulation.id, file, data)
                lines = sum(data.count(b"\n") for data in found.values())
                return Step(status="FINISHED", count=lines)

            async def progress(cursor: list[str], count: int) -> None:
                step = Step(status="RUNNING", updatedAt=time.time(), cursor=cursor, count=count)
                await self.store.set_step(regulation.id, name, step)

            count = await self.sweep.delete(subject, running.cursor, running.count, progress)
            return Step(status="FINISHED", count=count)
        destination = self.destinations[name.removeprefix(DESTINATION)]
        if access:
            data = await destination.access(subject)
            await self.store.put_access(regulation.id, f"{destination.name}.ndjson", data)
            return Step(status="FINISHED", count=data.count(b"\n"))
        removed = await destination.delete(subject)
        detail = "" if removed is not None else "asked to delete; it does not say how many"
        return Step(status="FINISHED", count=removed or 0, detail=detail)

    async def _renew(self, regulation_id: str, name: str) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            with contextlib.suppress(RedisError, RedisClusterException):
                await self.store.lease(regulation_id, name, self.consumer, self.lease)
