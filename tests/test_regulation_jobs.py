"""A worker's regulation steps in process: deletes from the streams, the dead letters, a
`file` destination and an `http` one; access collected; a step taken over after its worker
died half-way (docs/regulations.md). With real processes: test_regulations_processes.py."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.constants import dead_letter_key, events_key
from gateway.store.regulation_records import Step
from gateway.store.regulations import RegulationStore
from gateway.worker.destinations import Destination
from gateway.worker.destinations.file import FileDestination
from gateway.worker.destinations.http import HttpDestination
from gateway.worker.message import Message
from gateway.worker.regulation_jobs import RegulationJobs
from tests.helpers.destinations import Collector
from tests.helpers.gateway import MakeClient, admin_of
from tests.helpers.streams import read_stream, stream_messages

STREAMS = [events_key(0)]


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    found = Collector()
    yield found
    await found.close()


World = tuple[TestClient[Any, Any], list[Destination]]


@pytest.fixture
async def world(
    make_client: MakeClient, redis: Redis, tmp_path: Path, collector: Collector
) -> AsyncIterator[World]:
    """A gateway with messages of u1 and u2 in its stream, a dead letter of u1, and a file
    and an http destination (each holding what it was given)."""
    client = await make_client()
    for user in ("u1", "u2", "u1"):
        await client.post("/v1/track", json={"userId": user, "event": "E"})
    await redis.xgroup_create(events_key(0), "g", id="0")
    letter = json.dumps({"userId": "u1", "event": "Dead"})
    await redis.xadd(dead_letter_key("g"), {"data": letter, "source": "default"})
    archive = FileDestination("archive", tmp_path / "archive", fsync=False)
    base = await collector.start()
    http = HttpDestination("crm", base + "/batch", delete_url=base + "/delete", retries=0)
    plain = HttpDestination("plain", base + "/batch")
    stored = await read_stream(redis, events_key(0))
    await archive.send([_message(fields) for _, fields in stored])
    destinations: list[Destination] = [archive, http, plain]
    yield client, destinations
    for destination in destinations:
        await destination.close()


def _message(fields: dict[bytes, bytes]) -> Message:
    body = json.loads(fields[b"data"])
    return Message(events_key(0), "0-1", fields[b"data"], body, "default")


async def regulate(client: TestClient[Any, Any], kind: str, user: str) -> str:
    body = {"regulationType": kind, "subjectType": "USER_ID", "subjectIds": [user]}
    answer = await admin_of(client).post("/v1/regulations", json=body)
    assert answer.status == 200, await answer.text()
    return str((await answer.json())["data"]["regulateId"])


async def status(client: TestClient[Any, Any], regulation: str) -> dict[str, Any]:
    answer = await admin_of(client).get(f"/v1/regulations/{regulation}")
    return dict((await answer.json())["data"]["regulation"])


def archived(tmp_path: Path) -> list[str]:
    lines = (tmp_path / "archive" / "events-000001.ndjson").read_text().splitlines()
    return [json.loads(line)["userId"] for line in lines]


async def test_suppress_with_delete_reaches_every_store(
    world: World, redis: Redis, tmp_path: Path, collector: Collector
) -> None:
    client, destinations = world
    jobs = RegulationJobs(redis, STREAMS, "g", "w1", destinations)
    await jobs.register()
    regulation = await regulate(client, "SUPPRESS_WITH_DELETE", "u1")
    assert (await status(client, regulation))["overallStatus"] == "RUNNING"
    await jobs.once()

    assert [m["userId"] for m in await stream_messages(redis)] == ["u2"]
    assert await redis.xlen(dead_letter_key("g")) == 0
    assert archived(tmp_path) == ["u2"]
    assert collector.deletions == [
        {
            "regulationId": regulation,
            "regulationType": "SUPPRESS_WITH_DELETE",
            "subjectType": "USER_ID",
            "subjectIds": ["u1"],
        }
    ]
    found = await status(client, regulation)
    assert found["overallStatus"] == "FINISHED"
    stores = {s["name"]: (s["status"], s["count"]) for s in found["stores"]}
    assert stores == {
        "suppression": ("FINISHED", 0),
        "streams": ("FINISHED", 3),
        "destination:archive": ("FINISHED", 2),
        "destination:crm": ("FINISHED", 0),
        "destination:plain": ("NOT_SUPPORTED", 0),
    }
    assert await RegulationStore(redis).pending() == []


async def test_a_step_left_half_done_is_taken_over(
    world: World, redis: Redis, tmp_path: Path, collector: Collector
) -> None:
    client, destinations = world
    first = RegulationJobs(redis, STREAMS, "g", "w1", destinations, lease=0.6)
    await first.register()
    await regulate(client, "SUPPRESS_ONLY", "u1")
    regulation = await regulate(client, "DELETE_ONLY", "u1")
    collector.hold_deletions = asyncio.Event()
    killed = asyncio.create_task(first.once())  # hangs in the deletion call
    await asyncio.wait_for(collector.deletion_arrived.wait(), 5)
    killed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await killed
    # A cancelled step gives its lease back; a SIGKILLed worker's stays until it expires.
    assert await RegulationStore(redis).lease(regulation, "destination:crm", "w1", 0.6)
    stores = {s["name"]: s["status"] for s in (await status(client, regulation))["stores"]}
    assert stores["destination:crm"] == "RUNNING"
    collector.hold_deletions = None

    other = RegulationJobs(redis, STREAMS, "g", "w2", destinations, lease=0.6)
    await other.once()  # the lease is still w1's: w2 leaves the step alone
    stores = {s["name"]: s["status"] for s in (await status(client, regulation))["stores"]}
    assert stores["destination:crm"] == "RUNNING"
    await asyncio.sleep(0.7)
    await other.once()
    assert (await status(client, regulation))["overallStatus"] == "FINISHED"
    assert len(collector.deletions) == 1


async def test_the_same_consumer_restarted_resumes_at_once(
    world: World, redis: Redis, tmp_path: Path, collector: Collector
) -> None:
    client, destinations = world
    store = RegulationStore(redis)
    await regulate(client, "SUPPRESS_ONLY", "u1")
    regulation = await regulate(client, "DELETE_ONLY", "u1")
    assert await store.lease(regulation, "streams", "w1", 60)  # w1 died holding it
    first_id = (await read_stream(redis, events_key(0)))[0][0].decode()
    await store.set_step(
        regulation, "streams", Step(status="RUNNING", cursor=[events_key(0), first_id], count=1)
    )  # it had deleted the first entry and recorded it
    await redis.xdel(events_key(0), first_id)
    await RegulationJobs(redis, STREAMS, "g", "w1", destinations).once()
    found = await status(client, regulation)
    assert {s["name"]: (s["status"], s["count"]) for s in found["stores"]}["streams"] == (
        "FINISHED",
        3,
    )
    assert [m["userId"] for m in await stream_messages(redis)] == ["u2"]


async def test_access_collects_exactly_the_subjects_messages(
    world: World, redis: Redis, tmp_path: Path, collector: Collector
) -> None:
    client, destinations = world
    jobs = RegulationJobs(redis, STREAMS, "g", "w1", destinations)
    await jobs.register()
    regulation = await regulate(client, "ACCESS", "u1")
    await jobs.once()
    found = await status(client, regulation)
    assert found["overallStatus"] == "FINISHED"
    assert found["download"] == f"/v1/regulations/{regulation}/download"
    answer = await admin_of(client).get(found["download"])
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(await answer.read())) as archive:
        files = {n: archive.read(n).decode().splitlines() for n in archive.namelist()}
    assert sorted(files) == ["archive.ndjson", "dead-letters.ndjson", "streams.ndjson"]
    events = {n: [json.loads(line)["event"] for line in lines] for n, lines in files.items()}
    assert events == {
        "archive.ndjson": ["E", "E"],
        "dead-letters.ndjson": ["Dead"],
        "streams.ndjson": ["E", "E"],
    }
    assert all(json.loads(line)["userId"] == "u1" for lines in files.values() for line in lines)
    ttl = await redis.pttl(f"gateway:regulations:{{reg}}:access:{regulation}")
    assert 0 < ttl <= 7 * 86400 * 1000
    await redis.delete(f"gateway:regulations:{{reg}}:access:{regulation}")  # as it expires
    assert (await admin_of(client).get(found["download"])).status == 410
