"""Waiting, bounded, for something a background task or another process does."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], Awaitable[bool]], attempts: int = 400) -> None:
    """Wait until `check()` is true, at most `attempts` times 25 ms."""
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the condition never became true")
