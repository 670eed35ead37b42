"""A real client library, analytics-python (PyPI: segment-analytics-python), against the gateway."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.ingest.sources import Source, Sources
from tests.helpers.gateway import MakeClient
from tests.helpers.missing import missing
from tests.helpers.streams import stored, stream_messages

try:
    from segment.analytics import client as segment
    from segment.analytics import request
except ImportError:
    missing("analytics-python is not installed: pip install -e '.[test]'")


def send_with_sdk(host: str, write_key: str, gzip: bool) -> list[str]:
    """Use the SDK as an application would; returns the errors it reported."""
    errors: list[str] = []
    sdk = segment.Client(
        write_key,
        host=host,
        gzip=gzip,
        sync_mode=True,
        max_retries=0,
        on_error=lambda error, _batch: errors.append(str(error)),
    )
    sdk.identify("user-7", {"email": "ada@example.com", "plan": "pro"})
    sdk.track("user-7", "Order Completed", {"revenue": 42.5, "currency": "EUR"})
    sdk.page("user-7", "Docs", "Install", {"path": "/docs/install"})
    sdk.screen("user-7", "Mobile", "Home")
    sdk.group("user-7", "company-1", {"name": "Initech"})
    sdk.alias("anon-3", "user-7")
    sdk.track(anonymous_id="anon-9", event="Viewed", properties={"n": 1})
    sdk.flush()
    return errors


@pytest.mark.parametrize("gzip", [False, True])
async def test_analytics_python_messages_land_in_the_stream(
    make_client: MakeClient, redis: Redis, gzip: bool
) -> None:
    client: TestClient[Any, Any] = await make_client(
        sources=Sources([Source(id="backend", write_keys=["wk_backend"])])
    )
    host = str(client.make_url("")).rstrip("/")
    errors = await asyncio.to_thread(send_with_sdk, host, "wk_backend", gzip)
    assert errors == []
    stored = await stream_messages(redis)
    assert [m["type"] for m in stored] == [
        "identify",
        "track",
        "page",
        "screen",
        "group",
        "alias",
        "track",
    ]
    assert {m["_source"] for m in stored} == {"backend"}
    identify, track, page, screen, group, alias, anonymous = stored
    assert identify["traits"] == {"email": "ada@example.com", "plan": "pro"}
    assert track["event"] == "Order Completed"
    assert track["properties"] == {"revenue": 42.5, "currency": "EUR"}
    assert page["name"] == "Install"
    assert page["category"] == "Docs"
    assert screen["name"] == "Home"
    assert group["groupId"] == "company-1"
    assert alias["previousId"] == "anon-3"
    assert anonymous["anonymousId"] == "anon-9"
    for message in stored:
        assert message["context"]["library"]["name"] == "analytics-python"
        assert message["messageId"]
        assert message["receivedAt"]
        assert message["originalTimestamp"]
        assert "writeKey" not in message


async def test_analytics_python_sees_the_refusal_of_a_wrong_key(
    make_client: MakeClient, redis: Redis
) -> None:
    client = await make_client(sources=Sources([Source(id="b", write_keys=["right"])]))
    host = str(client.make_url("")).rstrip("/")
    # In sync mode the SDK raises what the server answered.
    with pytest.raises(request.APIError) as refused:
        await asyncio.to_thread(send_with_sdk, host, "wrong", False)
    assert refused.value.status == 400
    assert "Invalid or missing writekey" in str(refused.value)
    assert await stored(redis) == []
