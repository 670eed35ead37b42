"""The archive destination and `gateway replay`: files by source and hour, read back in order."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from gateway.constants import events_key
from gateway.ops.embedded import RedisProcess
from gateway.store import partitions
from gateway.worker import replay
from gateway.worker.archive_reader import Archived, Window, hours, read_hour, read_lines
from gateway.worker.destinations import ArchiveDestination
from gateway.worker.message import Message
from gateway.worker.progress import Progress
from gateway.worker.replay_targets import Sent, Stopped
from tests.helpers.destinations import Collector
from tests.helpers.processes import gateway
from tests.helpers.streams import read_stream

START = "2026-12-02T13:59:58"
"""Messages every half second from here: two hours (13 and 14), two sources."""


def message(n: int, source: str) -> Message:
    seconds = 58 + n // 2
    received = f"2026-12-02T{13 + seconds // 60 + (seconds % 3600) // 3600:02d}:" \
        f"{(59 + seconds // 60) % 60:02d}:{seconds % 60:02d}.{(n % 2) * 500:03d}Z"  # fmt: skip
    body = {"type": "track", "event": "E", "userId": f"u{n % 5}", "messageId": f"{source}-{n}",
            "receivedAt": received}  # fmt: skip
    data = json.dumps(body, separators=(",", ":")).encode()
    return Message(stream=events_key(0), id=f"{n + 1}-0", data=data, body=body, source=source)


MESSAGES = [message(n, source) for n in range(20) for source in ("web", "app")]


@pytest.fixture
async def archived(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    archive = ArchiveDestination("archive", root)
    archive.bind("w1")
    for start in range(0, len(MESSAGES), 7):
        assert (await archive.send(MESSAGES[start : start + 7])).ok
    await archive.close()
    return root


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.gz"))


async def test_messages_are_archived_by_source_and_hour(archived: Path) -> None:
    assert files(archived) == [
        f"source={s}/date=2026-12-02/hour={h}/part-w1-000001.ndjson.gz"
        for s in ("app", "web")
        for h in ("13", "14")
    ]
    web_13 = archived / "source=web/date=2026-12-02/hour=13/part-w1-000001.ndjson.gz"
    zcat = await asyncio.create_subprocess_exec("zcat", str(web_13), stdout=subprocess.PIPE)
    lines, _ = await zcat.communicate()
    assert zcat.returncode == 0
    assert [json.loads(line)["messageId"] for line in lines.splitlines()] == [
        "web-0", "web-1", "web-2", "web-3"
    ]  # fmt: skip
    assert gzip.decompress(web_13.read_bytes()) == lines  # several members, one text


async def test_a_restarted_archive_starts_a_new_file_and_rotates_by_size(archived: Path) -> None:
    again = ArchiveDestination("archive", archived, max_bytes=1)
    again.bind("w1")
    assert (await again.send(MESSAGES[:4])).ok  # web-0, app-0, web-1, app-1: hour 13
    assert (await again.send(MESSAGES[4:6])).ok
    await again.close()

    hour = archived / "source=web/date=2026-12-02/hour=13"
    assert sorted(p.name for p in hour.iterdir()) == [
        "part-w1-000001.ndjson.gz", "part-w1-000002.ndjson.gz", "part-w1-000003.ndjson.gz"
    ]  # fmt: skip


async def test_a_file_cut_short_is_read_up_to_its_last_whole_batch(archived: Path) -> None:
    path = archived / "source=app/date=2026-12-02/hour=14/part-w1-000001.ndjson.gz"
    whole = list(read_lines(path))
    path.write_bytes(path.read_bytes() + gzip.compress(b'{"cut": "short"}\n')[:-6])

    assert list(read_lines(path)) == whole


async def test_the_reader_orders_an_hour_by_receivedat_without_duplicates(archived: Path) -> None:
    again = ArchiveDestination("archive", archived)
    again.bind("w2")
    assert (await again.send(MESSAGES[:6])).ok  # written twice: a crash before the ack
    await again.close()

    found = hours(archived, Window())
    assert [h.hour for h, _ in found] == [13, 14]
    first = read_hour(found[0][1], Window())
    assert [m.message_id for m in first] == ["app-0", "web-0", "app-1", "web-1", "app-2",
                                             "web-2", "app-3", "web-3"]  # fmt: skip


class Failing:
    """A target that takes `batches` batches, then stops the replay."""

    def __init__(self, batches: int) -> None:
        self.batches = batches
        self.got: list[str] = []

    async def send(self, batch: Sequence[Archived]) -> Sent:
        if self.batches == 0:
            raise Stopped("down")
        self.batches -= 1
        self.got += [m.message_id for m in batch]
        return Sent(delivered=len(batch))

    async def close(self) -> None:
        pass


async def test_an_interrupted_replay_resumes_where_it_stopped(
    archived: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "checkpoint.json"
    query: dict[str, Any] = {"test": 1}
    first, second = Failing(3), Failing(100)

    assert await replay.replay(archived, Window(), first, checkpoint, query, 5) == 1
    assert checkpoint.exists()
    assert await replay.replay(archived, Window(), second, checkpoint, query, 5) == 0

    assert len(first.got) == 8 + 5  # hour 13 in batches of 5 and 3, then one of hour 14
    assert first.got + second.got == [m.message_id for _, d in hours(archived, Window())
                                      for m in read_hour(d, Window())]  # fmt: skip
    assert not checkpoint.exists()
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("replayed 40 messages (resumed after 13 sent before) in ")
    checkpoint.write_text(json.dumps({"query": {"other": 1}, "hour": "x"}))
    with pytest.raises(ValueError, match="belongs to another replay"):
        await replay.replay(archived, Window(), second, checkpoint, query, 5)


@pytest.mark.slow
async def test_replaying_a_window_of_one_source_delivers_exactly_its_messages(
    archived: Path, tmp_path: Path
) -> None:
    collector = Collector()
    url = await collector.start()
    try:
        code, out, err = await gateway(
            "replay", "--archive", str(archived), "--source", "web",
            "--since", "2026-12-02T13:59:59.5Z", "--until", "2026-12-02T14:00:03",
            "--destination", "http", "--url", url, "--batch-size", "3",
            "--data-dir", str(tmp_path / "data"),
        )  # fmt: skip
    finally:
        await collector.close()

    assert code == 0, err
    expected = [
        m.body
        for m in MESSAGES
        if m.source == "web"
        and "2026-12-02T13:59:59.500Z" <= m.body["receivedAt"] < "2026-12-02T14:00:03"
    ]
    assert collector.accepted["/"] == expected  # fmt: skip
    assert [m["messageId"] for m in expected] == [f"web-{n}" for n in range(3, 10)]
    assert out.splitlines() == [out.splitlines()[0]]  # not a terminal: one summary line
    assert out.startswith("replayed 7 messages in ")
    assert list((tmp_path / "data").glob("replay-*.json")) == []  # done: no checkpoint left


@pytest.mark.slow
async def test_replaying_into_the_streams_keeps_the_messageids_and_dedupes(
    archived: Path, redis: Redis, redis_server: RedisProcess, tmp_path: Path
) -> None:
    await partitions.record(redis, 2)
    args = ("replay", "--archive", str(archived), "--source", "app", "--to-streams",
            "--redis-url", redis_server.url, "--data-dir", str(tmp_path))  # fmt: skip

    code, out, err = await gateway(*args)
    assert code == 0, err
    assert out.startswith("replayed 20 messages in ")
    code, out, err = await gateway(*args)
    assert code == 0, err
    assert out.startswith("replayed 0 messages, 20 dropped as duplicates the streams still held")

    ids = []
    for stream in (events_key(0), events_key(1)):
        for _, fields in await read_stream(redis, stream):
            assert fields[b"source"] == b"app"
            ids.append(json.loads(fields[b"data"])["messageId"])
    assert sorted(ids) == sorted(f"app-{n}" for n in range(20))
    assert await redis.xlen(events_key(0)) > 0  # users spread over the recorded partitions
    assert await redis.xlen(events_key(1)) > 0


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_is_drawn_on_a_terminal_only() -> None:
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = Progress(stream, total=4)
        bar.update(2, 1500)
        bar.close()

    assert pipe.getvalue() == ""
    drawn = terminal.getvalue()
    assert drawn.startswith("\r[" + "#" * 15 + "." * 15 + "] 2/4 hours  1500 messages  ")
    assert "/s" in drawn
    assert drawn.endswith("\r\x1b[K")
