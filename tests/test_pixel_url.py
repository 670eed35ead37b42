"""`gateway pixel-url`: the printed URL is accepted by the gateway as it stands."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from yarl import URL

from gateway.cli import main
from gateway.http.pixel import GIF
from gateway.ingest.sources import Source, Sources
from tests.helpers.gateway import MakeClient
from tests.helpers.processes import ROOT
from tests.helpers.streams import stream_messages


def pixel_url(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["pixel-url", *args]) == 0
    return str(capsys.readouterr().out.strip())


async def test_the_issue_example_lands(make_client: MakeClient, redis: Redis) -> None:
    """The command line of the issue, run as a user runs it, then the URL fetched."""
    client = await make_client(Sources([Source(id="mail", write_keys=["K"])]))
    base = str(client.make_url("")).rstrip("/")
    command = [sys.executable, "-m", "gateway", "pixel-url", "--type", "track"]
    command += ["--write-key", "K", "--event", "Email Opened", "--property", "campaign=nov"]
    process = await asyncio.create_subprocess_exec(
        *command, "--base-url", base, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    url = out.decode().strip()
    assert url.startswith(f"{base}/v1/pixel/track?data=")
    response = await client.session.get(URL(url, encoded=True))
    assert await response.read() == GIF
    assert "X-Pixel-Rejected" not in response.headers
    [message] = await stream_messages(redis)
    assert message["event"] == "Email Opened"
    assert message["properties"] == {"campaign": "nov"}
    assert message["anonymousId"]  # derived, since no id was given
    assert message["_source"] == "mail"
    assert "writeKey" not in message


async def test_every_flag(
    client: TestClient[Any, Any], redis: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    base = str(client.make_url("")).rstrip("/")
    url = pixel_url(
        capsys,
        *("--type", "identify", "--user-id", "u7", "--trait", "plan=pro"),
        *("--trait", "address.city=Lyon", "--base-url", base),
    )
    await client.session.get(URL(url, encoded=True))
    url = pixel_url(
        capsys, "--type", "page", "--anonymous-id", "a1", "--name", "Nov", "--base-url", base
    )
    await client.session.get(URL(url, encoded=True))
    identify, page = await stream_messages(redis)
    assert identify["traits"] == {"plan": "pro", "address": {"city": "Lyon"}}
    assert identify["userId"] == "u7"
    assert page["name"] == "Nov"
    assert page["anonymousId"] == "a1"


def test_the_same_flags_give_the_same_url(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--event", "Opened", "--property", "campaign=nov")
    assert pixel_url(capsys, *args) == pixel_url(capsys, *args)
    assert pixel_url(capsys, *args).startswith("http://localhost:8080/v1/pixel/track?data=")


def test_missing_required_flags(capsys: pytest.CaptureFixture[str]) -> None:
    for args, needs in (
        (["--type", "track"], "--event"),
        (["--type", "group", "--user-id", "u"], "--group-id"),
        (["--type", "alias", "--previous-id", "a"], "--user-id"),
        (["--event", "E", "--property", "campaign"], "NAME=VALUE"),
        (["--event", "E", "--property", "a=1", "--property", "a.b=2"], "Conflicting"),
    ):
        assert main(["pixel-url", *args]) == 2
        assert needs in capsys.readouterr().err
