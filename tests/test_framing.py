"""Unparseable requests: the gateway's JSON 400, and the check that aiohttp still allows it."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.http import framing
from gateway.ops.tally import Tally


def test_installed_aiohttp_has_what_framing_relies_on() -> None:
    framing.check_aiohttp()  # raises AiohttpChanged, naming what changed, otherwise


def test_a_changed_handle_error_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    def handle_error(self: RequestHandler, request: web.BaseRequest, status: int) -> None: ...

    monkeypatch.setattr(RequestHandler, "handle_error", handle_error)
    with pytest.raises(framing.AiohttpChanged, match=r"handle_error\(self, request, status\)"):
        framing.check_aiohttp()


def test_a_server_without_its_own_call_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(web.Server, "__call__")
    with pytest.raises(framing.AiohttpChanged, match="__call__"):
        framing.check_aiohttp()


async def test_an_unparseable_request_gets_the_json_400() -> None:
    async def ok(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    tally = Tally()
    framing.json_errors(runner, tally)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        await writer.drain()
        answer = await reader.read()  # the connection is closed after the answer
        writer.close()
    finally:
        await runner.cleanup()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].endswith(b" 400 Bad Request"), head
    assert b"Content-Type: application/json" in head
    error = json.loads(body)
    assert error["Message"] == "Malformed HTTP request"
    assert tally.rejected == {"malformed": 1}


async def test_headers_that_stop_arriving_get_a_json_408_and_the_connection_closed() -> None:
    async def ok(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    tally = Tally()
    framing.json_errors(runner, tally, header_timeout=0.3)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        # A whole request first: no timer, the connection stays open for the next one.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200 ")
        await asyncio.sleep(0.5)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # then nothing
        began = asyncio.get_running_loop().time()
        answer = await asyncio.wait_for(reader.read(), 5)  # until the gateway closes
        waited = asyncio.get_running_loop().time() - began
        writer.close()
    finally:
        await runner.cleanup()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout"), head
    assert json.loads(body)["Message"] == "Request Timeout"
    assert 0.25 < waited < 2
    assert tally.requests[("other", "UNKNOWN")] == {408: 1}
