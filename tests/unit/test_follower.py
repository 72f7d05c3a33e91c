"""The feed follower: when a reader of the feed reads again."""

from __future__ import annotations

import asyncio

from projections.follower import FeedFollower
from store.feed import HELD_BACK_RETRY


async def test_a_full_batch_is_followed_at_once_and_a_partial_one_waits() -> None:
    follower = FeedFollower(batch_size=3, poll_interval=3600)
    stop = asyncio.Event()
    sizes = [3, 3, 1]

    async def step() -> int:
        if not sizes:
            stop.set()
            return 0
        return sizes.pop(0)

    task = asyncio.create_task(follower.follow(stop, step))
    await asyncio.sleep(0.05)
    assert sizes == [] and not stop.is_set()  # waiting for a ring after the partial batch
    follower.wake()
    await asyncio.wait_for(task, 1)


async def test_a_rung_position_not_read_yet_is_looked_for_again_shortly() -> None:
    follower = FeedFollower(batch_size=10, poll_interval=3600)
    stop = asyncio.Event()
    steps = 0

    async def step() -> int:
        nonlocal steps
        steps += 1
        if steps == 3:
            stop.set()
        return 0

    follower.wake(42)  # announced, but held back by a transaction in flight
    task = asyncio.create_task(follower.follow(stop, step))
    await asyncio.wait_for(task, 20 * HELD_BACK_RETRY)
    assert steps == 3 and follower.rung > follower.seen
