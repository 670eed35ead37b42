"""Background tasks: stopping one, and running one for as long as a block runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

log = logging.getLogger(__name__)

RECANCEL_AFTER = 1.0
"""Seconds a cancelled task may take before it is cancelled again."""


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has finished.

    A task that swallowed the cancellation (a client library turned it into a timeout, see
    `raise_if_cancelled`) is cancelled again until it ends, so a shutdown never waits on a
    background loop that went on to its next sleep. One that fails on its way out once
    cancelled (redis-py, cancelled while it connects, can raise `AttributeError` from a
    connection it had not finished opening) was being stopped anyway: that is logged, not
    raised into the shutdown. A task that had failed before it was asked to stop still raises.
    """
    stopped = not task.done()
    while not task.done():
        task.cancel()
        await asyncio.wait((task,), timeout=RECANCEL_AFTER)
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception as exc:
        if not stopped:
            raise
        log.debug("%s failed as it was cancelled: %r", task.get_name(), exc)


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
