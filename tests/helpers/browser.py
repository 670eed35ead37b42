"""What the browser tests share: where npm installed the SDKs, and waiting for messages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.helpers.chromium import Page
from tests.helpers.streams import stream_messages

HERE = Path(__file__).resolve().parent.parent / "browser"
"""tests/browser: its `package.json`, and `node_modules` once `npm ci` ran there."""
BUNDLE = HERE / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
"""analytics-next's browser build: `index.js` (npm's UMD), `standalone.js` (the CDN's)."""
KEY = "wk_browser_1"
WAIT = 30.0
"""Bound on waiting for messages to land (they normally take milliseconds)."""
POLL = 0.05

Requests = list[tuple[str, str, int]]
Gateway = tuple[str, Requests]
"""A gateway's base URL, and the (method, path, status) it answered."""
MakeGateway = Callable[..., Awaitable[Gateway]]


async def landed(redis: Redis, count: int, page: Page, answered: Requests) -> list[dict[str, Any]]:
    """The stream's messages once `count` have landed; fails (with the browser's console and
    the gateway's answers) if they do not within `WAIT` seconds."""
    messages: list[dict[str, Any]] = []
    for _ in range(int(WAIT / POLL)):
        messages = await stream_messages(redis)
        if len(messages) >= count:
            return messages
        await asyncio.sleep(POLL)  # another process's writes: nothing to await but the stream
    pytest.fail(
        f"{len(messages)} of {count} messages landed; gateway answered "
        f"{answered}; browser console:\n" + "\n".join(page.console)
    )
