"""The spool on its own: records in, the same records out, in order; tears detected."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store.entry import Entry
from gateway.store.spool import Spool, SpoolFull
from gateway.store.spool_format import HEADER, frame, read_chunk


def entries(n: int, start: int = 0) -> list[Entry]:
    return [
        Entry(f"gateway:events:{{{i % 2}}}", b'{"i": %d}' % i, "web", f"m{i}")
        for i in range(start, start + n)
    ]


def read_all(spool: Spool) -> list[Entry]:
    out: list[Entry] = []
    for segment in spool.sealed():
        offset = 0
        while True:
            chunk = read_chunk(segment.path, offset, 7, 1 << 20)
            out += chunk.entries
            offset = chunk.offset
            if chunk.end:
                break
    return out


def segment_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.seg"))


def open_spool(
    root: Path, max_bytes: int = 1 << 20, segment_bytes: int = 1 << 16, fsync: str = "everysec"
) -> Spool:
    return Spool.open(root, max_bytes, segment_bytes, fsync)


@pytest.mark.parametrize("fsync", ["always", "everysec", "no"])
async def test_appended_entries_come_back_in_order_across_segments(
    tmp_path: Path, fsync: str
) -> None:
    spool = open_spool(tmp_path, segment_bytes=500, fsync=fsync)
    spool.start()
    assert spool.empty
    for start in range(0, 100, 10):
        await spool.append(entries(10, start))
    assert not spool.empty
    spool.seal()
    assert len(spool.sealed()) > 1  # rotated
    assert read_all(spool) == entries(100)
    await spool.close()

    reopened = open_spool(tmp_path)  # a restart finds everything, nothing is active
    assert reopened.bytes == spool.bytes
    assert read_all(reopened) == entries(100)
    for segment in reopened.sealed():
        reopened.remove(segment)
    assert reopened.empty
    assert segment_files(tmp_path) == []
    await reopened.close()


async def test_a_torn_last_record_is_skipped_not_replayed(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    await spool.append(entries(5))
    await spool.close()
    [path] = segment_files(tmp_path)
    torn = frame(entries(1, 5)[0])
    with path.open("ab") as file:
        file.write(torn[: len(torn) - 3])  # a crash in the middle of a write

    reopened = open_spool(tmp_path)
    assert read_all(reopened) == entries(5)
    await reopened.close()


@pytest.mark.parametrize(
    "damage",
    [
        lambda record: record[: HEADER.size - 2],  # torn inside the header
        lambda record: b"\xff\xff\xff\x7f" + record[4:],  # impossible length
        lambda record: record[:-1] + bytes([record[-1] ^ 1]),  # a flipped bit
    ],
)
async def test_damaged_records_end_the_segment(tmp_path: Path, damage: object) -> None:
    spool = open_spool(tmp_path)
    await spool.append(entries(3))
    await spool.close()
    [path] = segment_files(tmp_path)
    assert callable(damage)
    with path.open("ab") as file:
        file.write(damage(frame(entries(1, 3)[0])))
        file.write(frame(entries(1, 4)[0]))  # nothing after damage is trusted
    reopened = open_spool(tmp_path)
    assert read_all(reopened) == entries(3)
    await reopened.close()


async def test_a_full_spool_refuses_and_keeps_what_it_has(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, max_bytes=300)
    await spool.append(entries(3))
    assert spool.has_room()
    with pytest.raises(SpoolFull):
        await spool.append(entries(5, 3))
    spool.seal()
    assert read_all(spool) == entries(3)
    await spool.close()


async def test_each_process_gets_its_own_slot_and_orphans_are_found(tmp_path: Path) -> None:
    first = open_spool(tmp_path)
    second = open_spool(tmp_path)
    assert first.directory != second.directory
    await second.append(entries(2))
    assert Spool.adopt(second.directory, 1 << 20, 1 << 16, "no") is None  # locked
    await second.close()
    assert first.orphans() == [second.directory]
    adopted = Spool.adopt(second.directory, 1 << 20, 1 << 16, "no")
    assert adopted is not None
    assert read_all(adopted) == entries(2)
    await adopted.close()
    await first.close()
