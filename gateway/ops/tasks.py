"""Background tasks: stopping one, and running one for as long as a block runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has finished."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def running(coro: Coroutine[Any, Any, Any]) -> AsyncIterator[None]:
    """Run `coro` as a task while inside the block; cancel it and wait for it on the way out."""
    task = asyncio.create_task(coro)
    try:
        yield
    finally:
        await cancel(task)
