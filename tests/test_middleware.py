"""The wrapper every route answers through: an unexpected error is a JSON 500 to report."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from gateway.http import observe
from gateway.http.answering import answering
from gateway.ops.tally import Tally


async def test_an_unexpected_error_is_a_json_500_with_the_request_id(
    aiohttp_client: AiohttpClient,
) -> None:
    async def broken(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("a bug")

    tally = Tally()
    app = web.Application()
    app.router.add_get("/boom", answering(observe.wrap(broken, tally, "/boom")))
    client: TestClient[Any, Any] = await aiohttp_client(app)

    answer = await client.get("/boom", headers={"X-Request-Id": "report-42"})

    assert answer.status == 500
    assert (await answer.json())["Message"] == "Internal error"
    assert answer.headers["X-Request-Id"] == "report-42"  # the log line of the cause has it too
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert tally.requests[("/boom", "GET")] == {500: 1}
    # The process keeps serving.
    assert (await client.get("/boom")).status == 500
