"""Every route and alias reaches its handler, through tidy and untidy paths."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.http.handlers import BATCH_PATHS, SINGLE_PATHS
from tests.helpers.streams import stream_messages

MESSAGES: dict[str, dict[str, Any]] = {
    "identify": {"userId": "u1", "traits": {"email": "a@example.com"}},
    "track": {"userId": "u1", "event": "Signed Up"},
    "page": {"anonymousId": "a1", "name": "Home"},
    "screen": {"anonymousId": "a1", "name": "Settings"},
    "group": {"userId": "u1", "groupId": "g1"},
    "alias": {"userId": "u1", "previousId": "a1"},
}
SINGLE_ROUTES = [(kind, path) for kind, paths in SINGLE_PATHS.items() for path in paths]


@pytest.mark.parametrize(("kind", "path"), SINGLE_ROUTES)
async def test_single_route_stores_message_with_route_type(
    client: TestClient[Any, Any], redis: Redis, kind: str, path: str
) -> None:
    # The route sets the type, whatever the body says.
    response = await client.post(path, json={**MESSAGES[kind], "type": "bogus"})
    assert response.status == 200
    assert await response.json() == {"success": True}
    [stored] = await stream_messages(redis)
    assert stored["type"] == kind
    for field, value in MESSAGES[kind].items():
        assert stored[field] == value


@pytest.mark.parametrize("path", BATCH_PATHS)
async def test_batch_routes(client: TestClient[Any, Any], redis: Redis, path: str) -> None:
    batch = [{**message, "type": kind} for kind, message in MESSAGES.items()]
    response = await client.post(path, json={"batch": batch})
    assert response.status == 200
    assert await response.json() == {"success": True}
    stored = await stream_messages(redis)
    assert [m["type"] for m in stored] == list(MESSAGES)


@pytest.mark.parametrize("path", ["/v1/track/", "//v1//track", "/v1/t/", "/v1///t//"])
async def test_untidy_paths_reach_the_handler_without_redirect(
    client: TestClient[Any, Any], redis: Redis, path: str
) -> None:
    url = f"http://{client.host}:{client.port}{path}"  # as sent, not normalised by the client
    response = await client.session.post(url, json=MESSAGES["track"], allow_redirects=False)
    assert response.status == 200
    assert len(await stream_messages(redis)) == 1


async def test_unknown_route_is_a_json_404(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v2/track", json=MESSAGES["track"])
    assert response.status == 404
    body = await response.json()
    assert body["Error"] == "Not Found"
    assert "/v2/track" in body["Details"]


@pytest.mark.parametrize("path", ["/v1/track", "/v1/track/"])
async def test_wrong_method_is_a_json_405(client: TestClient[Any, Any], path: str) -> None:
    response = await client.get(path)
    assert response.status == 405
    assert "POST" in response.headers["Allow"]
    assert (await response.json())["Error"] == "Method Not Allowed"
