"""Deadline behaves as asyncio.timeout: a block over time ends in TimeoutError, other
cancellations stay cancellations, a block in time leaves nothing pending."""

from __future__ import annotations

import asyncio

import pytest

from crossroads.dispatch.deadline import Deadline


async def test_a_block_over_time_raises_timeout_error() -> None:
    with pytest.raises(TimeoutError):
        async with Deadline(0.01):
            await asyncio.sleep(10)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_block_in_time_leaves_no_timer_and_no_cancellation() -> None:
    async with Deadline(0.05):
        await asyncio.sleep(0)
    await asyncio.sleep(0.1)  # the timer would have fired by now
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    async def block() -> None:
        async with Deadline(10):
            await asyncio.sleep(10)

    task = asyncio.create_task(block())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
