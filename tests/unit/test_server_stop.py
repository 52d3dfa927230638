"""Stopping a server's background tasks when a cancellation gets lost on the way."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from signoff.serving.server import cancel_and_wait


async def test_a_task_that_lost_its_cancellation_is_cancelled_again() -> None:
    rounds = 0

    async def loses_one() -> None:
        nonlocal rounds
        # As asyncio.wait_for does on Python 3.11 when its result arrives with the cancel.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        while True:  # a forever loop, as the expiry sweeper
            rounds += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(loses_one())
    await asyncio.sleep(0)
    assert await cancel_and_wait([task], within=5) == []
    assert task.cancelled()
    assert rounds  # it did lose the first cancellation


async def test_a_task_that_will_not_end_is_named_and_left_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    released = asyncio.Event()

    async def refuses() -> None:
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)

    task = asyncio.create_task(refuses(), name="stubborn")
    await asyncio.sleep(0)
    assert await cancel_and_wait([task], within=0.3) == [task]
    [rec] = [r for r in caplog.records if r.getMessage() == "server.task_not_stopped"]
    assert rec.task == "stubborn"  # type: ignore[attr-defined]
    assert "refuses (test_server_stop.py:" in rec.where  # type: ignore[attr-defined]
    released.set()
    task.cancel()
    await task
