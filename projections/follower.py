"""Following the feed: when to read it again.

A reader of the gap-safe feed (the projection runner, the live feed) reads a batch, then waits
for a ring of the doorbell, or for its safety poll, whichever comes first: a lost ring costs
latency, never an event. A full batch means more is waiting, so it reads again at once. A ring
announces a position; while a rung position has not been read yet, a transaction still in
flight holds it back (the feed is gap-safe, and such holds are short), so the reader looks
again after `HELD_BACK_RETRY` rather than at the next poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from store.events import RecordedEvent
from store.feed import HELD_BACK_RETRY

Step = Callable[[], Awaitable[int]]
"""Reads (and hands on) one batch; returns its size."""


class FeedFollower:
    """Rung and seen positions, the wake-up, and the loop that reads when there is more."""

    def __init__(self, *, batch_size: int, poll_interval: float) -> None:
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.rung = 0  # the highest position a ring announced
        self.seen = 0  # the highest position read
        self._wake = asyncio.Event()

    def wake(self, position: int | None = None) -> None:
        """There is more in the feed, up to `position` if known: read it now."""
        if position is not None:
            self.rung = max(self.rung, position)
        self._wake.set()

    def saw(self, events: Sequence[RecordedEvent]) -> None:
        """`events` were read."""
        if events:
            self.seen = max(self.seen, max(event.position for event in events))

    async def follow(
        self,
        stop: asyncio.Event,
        step: Step,
        *,
        between: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """Run `step` until `stop`: again at once after a full batch, else after a ring, a
        held-back retry or the safety poll; `between` runs after each wait."""
        while not stop.is_set():
            self._wake.clear()  # a ring during the step brings the next one at once
            if await step() >= self.batch_size:
                continue
            await self.pause(stop)
            if between is not None:
                await between()

    async def pause(self, stop: asyncio.Event) -> None:
        """Wait for a ring, for `stop`, or for the held-back retry or the safety poll."""
        held_back = self.rung > self.seen
        await wait_any(
            stop, self._wake, seconds=HELD_BACK_RETRY if held_back else self.poll_interval
        )


async def wait_any(*events: asyncio.Event, seconds: float) -> None:
    """Return once any of `events` is set, or after `seconds`."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
