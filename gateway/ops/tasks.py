"""Background tasks: stopping one, and running one for as long as a block runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

RECANCEL_AFTER = 1.0
"""Seconds a cancelled task may take before it is cancelled again."""


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has finished.

    A task that swallowed the cancellation (a client library turned it into a timeout, see
    `raise_if_cancelled`) is cancelled again until it ends, so a shutdown never waits on a
    background loop that went on to its next sleep.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait((task,), timeout=RECANCEL_AFTER)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def raise_if_cancelled() -> None:
    """Raise `CancelledError` if this task is being cancelled.

    For a loop around a client library: a cancellation that reaches redis-py inside its own
    timeout can be swallowed (the call returns, or raises a `TimeoutError`), and the loop
    would go on to its next sleep as if nothing had been asked.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@contextlib.asynccontextmanager
async def running(coro: Coroutine[Any, Any, Any]) -> AsyncIterator[None]:
    """Run `coro` as a task while inside the block; cancel it and wait for it on the way out."""
    task = asyncio.create_task(coro)
    try:
        yield
    finally:
        await cancel(task)
