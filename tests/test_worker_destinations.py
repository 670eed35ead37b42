"""The built-in destinations and the destinations config, without Redis."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.worker import config
from gateway.worker.destinations import FileDestination, HttpDestination, StdoutDestination
from gateway.worker.destinations.http import encode_batch, retry_after
from gateway.worker.message import Message
from tests.helpers.destinations import ListDestination


def message(n: int, size: int = 0) -> Message:
    body = {"type": "track", "messageId": f"m{n}", "userId": "u", "pad": "x" * size}
    data = json.dumps(body, separators=(",", ":")).encode()
    return Message("gateway:events:{0}", f"1-{n}", data, body, "default")


async def test_file_writes_ndjson_and_rotates_by_size(tmp_path: Path) -> None:
    batch = [message(n, size=40) for n in range(10)]
    line = len(batch[0].data) + 1
    file = FileDestination("archive", tmp_path, max_bytes=3 * line)

    result = await file.send(batch[:4])
    assert result.ok
    result = await file.send(batch[4:])
    assert result.ok
    await file.close()

    names = sorted(p.name for p in tmp_path.iterdir())  # noqa: ASYNC240 - a test's tmp dir
    assert names == [f"events-00000{n}.ndjson" for n in (1, 2, 3, 4)]
    lines = [
        line for name in names for line in (tmp_path / name).read_bytes().splitlines(keepends=True)
    ]
    assert lines == [m.data + b"\n" for m in batch]
    assert all((tmp_path / name).stat().st_size <= 3 * line for name in names)


async def test_file_continues_after_the_highest_file_on_restart(tmp_path: Path) -> None:
    first = FileDestination("archive", tmp_path, max_bytes=10_000)
    assert (await first.send([message(1)])).ok
    await first.close()
    (tmp_path / "events-000007.ndjson").write_bytes(b"")

    second = FileDestination("archive", tmp_path, max_bytes=10_000)
    assert (await second.send([message(2)])).ok
    await second.close()

    assert (tmp_path / "events-000001.ndjson").read_bytes() == message(1).data + b"\n"
    assert (tmp_path / "events-000007.ndjson").read_bytes() == message(2).data + b"\n"


async def test_file_that_cannot_be_written_fails_the_batch_for_a_retry(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a directory")
    file = FileDestination("archive", tmp_path / "taken")
    result = await file.send([message(1), message(2)])
    assert set(result.failed) == {0, 1}
    assert all(f.retry for f in result.failed.values())


async def test_stdout_prints_one_line_per_message() -> None:
    out = io.BytesIO()
    assert (await StdoutDestination("stdout", stream=out).send([message(1), message(2)])).ok
    assert out.getvalue() == message(1).data + b"\n" + message(2).data + b"\n"


def test_the_http_body_is_a_segment_batch_of_the_enqueued_bytes() -> None:
    batch = [message(1), message(2)]
    body = encode_batch(batch, "2024-05-01T12:00:00.000Z")
    assert body == b'{"batch":[' + batch[0].data + b"," + batch[1].data + (
        b'],"sentAt":"2024-05-01T12:00:00.000Z"}'
    )
    assert json.loads(body)["batch"] == [batch[0].body, batch[1].body]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("3") == 3.0
    assert retry_after(None) is None
    assert retry_after("soon") is None
    later = datetime.now(UTC) + timedelta(seconds=120)
    seconds = retry_after(format_datetime(later, usegmt=True))
    assert seconds is not None
    assert 100 < seconds <= 120


class Answers:
    """A test server answering from a script of (status, headers, body)."""

    def __init__(self, *script: tuple[int, dict[str, str], object]) -> None:
        self.script = list(script)
        self.bodies: list[dict[str, object]] = []
        self.headers: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.headers.append(dict(request.headers))
        status, headers, body = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return web.json_response(body, status=status, headers=headers)


@pytest.fixture
async def answers_url() -> AsyncIterator[tuple[Answers, str]]:
    answers = Answers((200, {}, {"success": True}))
    app = web.Application()
    app.router.add_post("/v1/batch", answers.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield answers, str(server.make_url("/v1/batch"))
    await server.close()


async def test_http_retries_429_and_5xx_in_place(answers_url: tuple[Answers, str]) -> None:
    answers, url = answers_url
    answers.script = [
        (429, {"Retry-After": "0"}, {}),
        (503, {}, {}),
        (200, {}, {"success": True}),
    ]
    http = HttpDestination("http", url, write_key="wk_1", backoff=0.01)
    try:
        result = await http.send([message(1)])
    finally:
        await http.close()
    assert result.ok
    assert len(answers.bodies) == 3
    assert answers.headers[0]["Authorization"] == "Basic d2tfMTo="  # "wk_1:"


async def test_http_gives_the_batch_back_when_retries_run_out(
    answers_url: tuple[Answers, str],
) -> None:
    answers, url = answers_url
    answers.script = [(500, {}, {"error": "boom"})]
    http = HttpDestination("http", url, retries=2, backoff=0.01)
    try:
        result = await http.send([message(1), message(2)])
    finally:
        await http.close()
    assert len(answers.bodies) == 3
    assert set(result.failed) == {0, 1}
    assert result.failed[0].retry
    assert result.failed[0].error == 'HTTP 500: {"error": "boom"}'


async def test_http_does_not_wait_out_a_long_retry_after(answers_url: tuple[Answers, str]) -> None:
    answers, url = answers_url
    answers.script = [(429, {"Retry-After": "3600"}, {})]
    http = HttpDestination("http", url, max_retry_after=60)
    try:
        result = await http.send([message(1)])
    finally:
        await http.close()
    assert len(answers.bodies) == 1
    assert result.failed[0].error.endswith("(Retry-After 3600s)")


async def test_http_4xx_is_reported_at_once(answers_url: tuple[Answers, str]) -> None:
    answers, url = answers_url
    answers.script = [(401, {}, {"error": "bad key"})]
    http = HttpDestination("http", url, headers={"Authorization": "Bearer t"})
    try:
        result = await http.send([message(1)])
    finally:
        await http.close()
    assert len(answers.bodies) == 1
    assert answers.headers[0]["Authorization"] == "Bearer t"
    assert result.failed[0].error.startswith("HTTP 401")


async def test_http_207_fails_only_the_listed_items(answers_url: tuple[Answers, str]) -> None:
    answers, url = answers_url
    errors = [{"Index": 1, "Error": "Bad Request", "Message": "Invalid event"}]
    answers.script = [(207, {}, {"Success": False, "Accepted": 2, "Errors": errors})]
    http = HttpDestination("http", url)
    try:
        result = await http.send([message(0), message(1), message(2)])
    finally:
        await http.close()
    assert list(result.failed) == [1]
    assert result.failed[1].error == "rejected: Bad Request: Invalid event"


def test_config_builds_several_destinations(tmp_path: Path) -> None:
    path = tmp_path / "destinations.toml"
    path.write_text(
        """
[[destination]]
name = "Mixpanel"
kind = "http"
url = "https://api.example/v1/batch"
headers = { Authorization = "Basic abc" }
retries = 5

[[destination]]
name = "archive"
kind = "file"
path = "/var/lib/gateway/archive"
max_bytes = 1000

[[destination]]
name = "mine"
kind = "tests.helpers.destinations:ListDestination"
failing = true
"""
    )
    mixpanel, archive, mine = config.load_file(path)
    assert isinstance(mixpanel, HttpDestination)
    assert (mixpanel.name, mixpanel.url, mixpanel.retries) == (
        "Mixpanel",
        "https://api.example/v1/batch",
        5,
    )
    assert mixpanel.headers["Authorization"] == "Basic abc"
    assert isinstance(archive, FileDestination)
    assert archive.max_bytes == 1000
    assert isinstance(mine, ListDestination)
    assert mine.failing


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no [[destination]] tables"),
        ("[[destination]]\nkind = 'stdout'\n", "needs a name"),
        ("[[destination]]\nname = 'a'\n", "(a): needs a kind"),
        ("[[destination]]\nname = 'a'\nkind = 'kafka'\n", "unknown kind 'kafka'"),
        ("[[destination]]\nname = 'a'\nkind = 'http'\n", "missing 1 required"),
        ("[[destination]]\nname='a'\nkind='http'\nurl='ftp://x'\n", "not an http:// or https://"),
        ("[[destination]]\nname='a'\nkind='stdout'\ncolor=true\n", "unexpected keyword"),
        (
            "[[destination]]\nname='a'\nkind='stdout'\n[[destination]]\nname='a'\nkind='stdout'",
            "the name 'a' is used twice",
        ),
        ("[[destination]]\nname='a'\nkind='json:loads'\n", "is not a Destination subclass"),
        ("[[destination]]\nname='a'\nkind='no_such_module:X'\n", "cannot import"),
        ("[workers]\n", "unknown tables or keys: workers"),
        ("[[destination]\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_destination_and_the_problem(
    tmp_path: Path, text: str, error: str
) -> None:
    path = tmp_path / "destinations.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as caught:
        config.load_file(path)
    assert error in str(caught.value)
    assert str(path) in str(caught.value)
