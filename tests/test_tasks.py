"""Stopping background tasks (`gateway.ops.tasks.cancel`)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.ops.tasks import cancel


async def test_a_task_failing_as_it_is_cancelled_does_not_fail_the_shutdown() -> None:
    # As redis-py does when cancelled while it opens a connection.
    async def connecting() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            writer = None
            writer.writelines([b"PING"])  # type: ignore[attr-defined]

    task = asyncio.create_task(connecting())
    await asyncio.sleep(0)
    await cancel(task)
    assert task.done()


async def test_a_task_that_failed_before_it_was_stopped_still_says_so() -> None:
    async def failing() -> None:
        raise ValueError("the loop broke")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="the loop broke"):
        await cancel(task)
