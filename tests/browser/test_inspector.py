"""The live inspector in a real headless Chromium (docs/inspector.md).

Logged in through the printed URL's token, the page shows what a real SDK (analytics-python)
sends, with each outcome and reason within two seconds: accepted, a duplicate, a batch
refused for its writeKey, an oversized batch item. A userId filter (typed, or opened as a
link) shows only that user's rows; a row's details show the stored JSON; the test-event
button lands a message in Redis. And the screenshot of docs/inspector.png, taken from the
page (`GATEWAY_INSPECTOR_SCREENSHOT=docs/inspector.png` writes it there).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.constants import dead_letter_key, events_key
from gateway.ingest.sources import Source, Sources
from tests.helpers.chromium import INSTALL_HINT, Chromium, Page, find_binary, launch
from tests.helpers.gateway import ADMIN_TOKEN, MakeClient, admin_of
from tests.helpers.missing import missing
from tests.helpers.streams import stream_messages

try:
    from segment.analytics import client as segment
except ImportError:
    missing("analytics-python is not installed: pip install -e '.[test]'")

pytestmark = pytest.mark.slow

KEY = "wk_inspector_1"
WITHIN = 2.0
"""Seconds a message may take to appear on the page (issue 22)."""
ROWS = """[...document.querySelectorAll('#rows tbody tr')].map(tr => ({
  outcome: tr.dataset.outcome, messageId: tr.dataset.messageId, userId: tr.dataset.userId,
  reason: tr.querySelector('.reason').textContent, route: tr.cells[2].textContent}))"""


@pytest.fixture
async def chromium(tmp_path: Path) -> AsyncIterator[Chromium]:
    binary = find_binary()
    if binary is None:
        missing(INSTALL_HINT)
    assert binary is not None
    async with launch(binary, tmp_path / "profile") as browser:
        yield browser


async def inspector(
    make_client: MakeClient, chromium: Chromium, query: str = ""
) -> tuple[TestClient[Any, Any], str, Page]:
    """A gateway (source `web`, messages of 2,000 bytes at most), and the inspector's page
    opened through the printed URL (`/?token=...`: the cookie, then the page)."""
    client = await make_client(
        Sources([Source(id="web", write_keys=[KEY])]), max_message_bytes=2_000
    )
    admin = str(admin_of(client).make_url("")).rstrip("/")
    page = await chromium.new_page()
    await page.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False},
    )
    await page.goto(f"{admin}/?token={ADMIN_TOKEN}{'&' + query if query else ''}")
    assert "token=" not in await page.evaluate("location.href")
    await until(page, "document.querySelector('#status').textContent === 'live'")
    await asyncio.sleep(1.2)  # every process has read the watching flag
    return client, admin, page


async def until(page: Page, condition: str, seconds: float = 10) -> float:
    """Wait for a JavaScript condition; the seconds it took."""
    start = time.monotonic()
    while not await page.evaluate(condition):
        if time.monotonic() - start > seconds:
            rows = await page.evaluate(ROWS)
            raise AssertionError(f"{condition} not within {seconds}s; rows: {rows}\n{page.console}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def sdk(host: str, key: str, errors: list[str]) -> Any:
    """analytics-python as an application runs it: messages queued, sent in batches."""
    return segment.Client(
        key,
        host=host,
        max_retries=0,
        on_error=lambda error, _batch: errors.append(str(error)),
    )


def send(host: str) -> list[str]:
    """What an application does: a batch with one message too big, the same message again
    (a retry), and a batch with a wrong writeKey. The errors the SDK reported."""
    errors: list[str] = []
    first = sdk(host, KEY, errors)
    first.track("ada", "Signed Up", {"plan": "pro"}, message_id="m-ada-1")
    first.identify("bob", {"email": "bob@example.com"}, message_id="m-bob-1")
    first.track("cyd", "Uploaded", {"blob": "x" * 3_000}, message_id="m-big")
    first.shutdown()  # sent, as one batch (a 207: one item refused)
    retry = sdk(host, KEY, errors)
    retry.track("ada", "Signed Up", {"plan": "pro"}, message_id="m-ada-1")
    retry.shutdown()
    wrong = sdk(host, "wk_wrong", errors)
    wrong.track("eve", "Signed Up", message_id="m-wrong")
    wrong.shutdown()
    return errors


async def test_what_an_sdk_sends_appears_with_its_outcome(
    make_client: MakeClient, chromium: Chromium, redis: Redis
) -> None:
    client, _, page = await inspector(make_client, chromium)
    host = str(client.make_url("")).rstrip("/")
    errors = await asyncio.to_thread(send, host)
    assert len(errors) == 1, errors  # the wrong key's 400
    assert "wk_wrong" not in errors[0]
    sent = time.monotonic()
    expected = {
        ("accepted", "m-ada-1"): "",
        ("accepted", "m-bob-1"): "",
        ("duplicate", "m-ada-1"): "already accepted",
        ("refused", "m-big"): "larger than 2000 bytes",
        ("refused", ""): "writekey",
    }
    for (outcome, message_id), reason in expected.items():
        await until(
            page,
            f"{ROWS}.some(r => r.outcome === {json.dumps(outcome)} && "
            f"r.messageId === {json.dumps(message_id)} && "
            f"r.reason.toLowerCase().includes({json.dumps(reason)}))",
        )
    assert time.monotonic() - sent <= WITHIN, "not every row within two seconds"
    rows = await page.evaluate(ROWS)
    assert {r["route"] for r in rows if r["outcome"] == "refused" and not r["messageId"]} == {
        "/v1/batch"
    }

    # The filter by userId: only ada's rows, whether typed or opened as a link.
    await page.evaluate(
        "document.querySelector('[name=userId]').value = 'ada';"
        "document.querySelector('#filters').requestSubmit()"
    )
    await until(page, "location.search === '?userId=ada'")
    rows = await page.evaluate(ROWS)
    assert rows
    assert {r["userId"] for r in rows} == {"ada"}, rows
    assert {r["outcome"] for r in rows} == {"accepted", "duplicate"}
    good: list[str] = []
    late = sdk(host, KEY, good)
    late.track("bob", "Late", message_id="m-late")
    await asyncio.to_thread(late.shutdown)
    await asyncio.sleep(1.5)
    assert {r["userId"] for r in await page.evaluate(ROWS)} == {"ada"}

    # The details pane: the message as stored.
    await page.evaluate("document.querySelector('#rows tbody tr[data-outcome=accepted]').click()")
    await until(page, "document.querySelector('#json').textContent.includes('Signed Up')")
    stored = json.loads(await page.evaluate("document.querySelector('#json').textContent"))
    assert (stored["messageId"], stored["userId"], stored["event"]) == (
        "m-ada-1",
        "ada",
        "Signed Up",
    )
    assert stored["receivedAt"]
    await until(page, "document.querySelector('#deliveries').textContent !== '…'")

    # The test-event button.
    await page.evaluate("document.querySelector('#test-send').click()")
    for _ in range(100):
        if any(m.get("event") == "Inspector Test Event" for m in await stream_messages(redis)):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(
            await page.evaluate("document.querySelector('#test-note').textContent")
        )


async def test_a_shared_link_shows_the_last_minutes_matches(
    make_client: MakeClient, chromium: Chromium
) -> None:
    client = await make_client(Sources([Source(id="web", write_keys=[KEY])]))
    host = str(client.make_url("")).rstrip("/")
    admin = str(admin_of(client).make_url("")).rstrip("/")
    errors: list[str] = []

    with_key = sdk(host, KEY, errors)
    with_key.track("ada", "Signed Up", message_id="m-1")
    with_key.track("bob", "Signed Up", message_id="m-2")
    with_key.page("ada", "Docs", "Install", message_id="m-3")
    await asyncio.to_thread(with_key.shutdown)
    assert errors == []
    page = await chromium.new_page()
    await page.goto(f"{admin}/?token={ADMIN_TOKEN}&userId=ada&type=track")
    await until(page, "document.querySelector('#status').textContent === 'live'")
    assert await page.evaluate("document.querySelector('[name=userId]').value") == "ada"
    rows = await page.evaluate(ROWS)
    assert [(r["messageId"], r["userId"]) for r in rows] == [("m-1", "ada")]


async def test_the_screenshot(make_client: MakeClient, chromium: Chromium, redis: Redis) -> None:
    client, _, page = await inspector(make_client, chromium)
    host = str(client.make_url("")).rstrip("/")
    await redis.xgroup_create(events_key(0), "warehouse", id="$", mkstream=True)
    await redis.xgroup_create(events_key(0), "crm", id="$")
    await redis.xadd(dead_letter_key("crm"), {"data": b"{}", "source": "web"})
    await asyncio.to_thread(send, host)
    steady = sdk(host, KEY, [])
    for n in range(24):  # a few seconds of rates
        steady.track(f"user-{n % 4}", "Viewed Page", {"n": n})
        await asyncio.to_thread(steady.flush)
        await asyncio.sleep(0.25)
    await asyncio.to_thread(steady.shutdown)
    await until(page, f"{ROWS}.length >= 29")
    await page.evaluate(
        "[...document.querySelectorAll('#rows tbody tr')]"
        ".find(tr => tr.dataset.messageId === 'm-big').click()"
    )
    await until(page, "!document.querySelector('#details').hidden")
    await asyncio.sleep(0.5)
    shot = await page.send("Page.captureScreenshot", {"format": "png"})
    png = base64.b64decode(shot["data"])
    assert png.startswith(b"\x89PNG")
    target = os.environ.get("GATEWAY_INSPECTOR_SCREENSHOT")
    if target:
        await asyncio.to_thread(Path(target).write_bytes, png)
