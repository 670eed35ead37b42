"""Regulations on the archive: a subject's messages deleted from its files, or read back."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

from gateway.constants import events_key
from gateway.worker.destinations import ArchiveDestination
from gateway.worker.message import Message
from gateway.worker.subject import Subject


def message(n: int, user: str, source: str, hour: int) -> Message:
    body = {
        "type": "track",
        "event": "E",
        "userId": user,
        "messageId": f"{source}-{n}",
        "receivedAt": f"2026-12-02T{hour:02d}:00:0{n % 10}.000Z",
    }
    data = json.dumps(body, separators=(",", ":")).encode()
    return Message(stream=events_key(0), id=f"{n + 1}-0", data=data, body=body, source=source)


def subject(*ids: str, source: str | None = None) -> Subject:
    return Subject("r1", "SUPPRESS_WITH_DELETE", "USER_ID", frozenset(ids), source)


def archived(root: Path) -> list[dict[str, str]]:
    return [
        json.loads(line)
        for path in sorted(root.rglob("*.ndjson.gz"))
        for line in gzip.decompress(path.read_bytes()).splitlines()
    ]


async def fill(archive: ArchiveDestination) -> None:
    batch = [
        message(n, user, source, hour)
        for n, (user, source, hour) in enumerate(
            (u, s, h) for u in ("ada", "bob") for s in ("web", "app") for h in (13, 14)
        )
    ]
    assert not (await archive.send(batch)).failed


async def test_delete_rewrites_every_file_without_the_subject(tmp_path: Path) -> None:
    archive = ArchiveDestination("archive", tmp_path)
    await fill(archive)
    assert archive.can_delete
    assert await archive.delete(subject("ada")) == 4
    assert {m["userId"] for m in archived(tmp_path)} == {"bob"}
    assert len(archived(tmp_path)) == 4
    # Deleting again is harmless; the archive still takes batches afterwards.
    assert await archive.delete(subject("ada")) == 0
    assert not (await archive.send([message(99, "ada", "web", 15)])).failed
    assert len(archived(tmp_path)) == 5
    await archive.close()


async def test_a_regulation_of_one_source_leaves_the_others(tmp_path: Path) -> None:
    archive = ArchiveDestination("archive", tmp_path)
    await fill(archive)
    assert await archive.delete(subject("ada", source="web")) == 2
    left = {(m["userId"], m["messageId"].split("-")[0]) for m in archived(tmp_path)}
    assert left == {("ada", "app"), ("bob", "web"), ("bob", "app")}
    await archive.close()


async def test_access_reads_back_exactly_the_subjects_messages(tmp_path: Path) -> None:
    archive = ArchiveDestination("archive", tmp_path)
    await fill(archive)
    lines = (await archive.access(subject("bob"))).splitlines()
    assert sorted(json.loads(line)["messageId"] for line in lines) == sorted(
        m["messageId"] for m in archived(tmp_path) if m["userId"] == "bob"
    )
    await archive.close()


async def test_a_writer_never_appends_to_a_file_a_rewrite_replaced(tmp_path: Path) -> None:
    # Two archives on one directory, as two workers of a group: one rewrites while the
    # other keeps its file open and appends. Nothing the writer was told is safe is lost.
    writer = ArchiveDestination("archive", tmp_path, consumer="w1")
    eraser = ArchiveDestination("archive", tmp_path, consumer="w2")
    await writer.send([message(0, "ada", "web", 13), message(1, "bob", "web", 13)])
    sends = [writer.send([message(n, "bob", "web", 13)]) for n in range(2, 40)]
    results = await asyncio.gather(eraser.delete(subject("ada")), *sends)
    assert results[0] == 1
    kept = archived(tmp_path)
    assert {m["userId"] for m in kept} == {"bob"}
    assert sorted(m["messageId"] for m in kept) == sorted(f"web-{n}" for n in range(1, 40))
    await writer.close()
    await eraser.close()
