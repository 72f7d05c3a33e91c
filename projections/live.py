"""The live feed: one reader per process, handing newly committed events to its subscribers.

The events table is the truth; a ring only says "read again". The reader follows the gap-safe
feed from its own checkpoint, woken by rings and by a safety poll, so a lost ring or a dead
listener adds latency and never loses an event. Each subscriber has a bounded buffer: one that
falls too far behind is cut off with `FellBehind` (resume with `after`), and never slows the
others.

A subscription given `after` registers for live events first, then reads the store from
`after` up to the checkpoint it registered at, then takes the live events beyond it: no gap, no
duplicate, in feed order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field

from projections.errors import FellBehind
from projections.follower import FeedFollower
from projections.metrics import SUBSCRIPTIONS_FELL_BEHIND
from store.event_store import EventStore
from store.events import FeedCheckpoint, RecordedEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter:
    stream_id: str | None = None
    stream_type: str | None = None
    types: frozenset[str] | None = None
    hidden_stream_type: str | None = None
    """A stream type never delivered (the internal uniqueness claims)."""

    def __call__(self, event: RecordedEvent) -> bool:
        return (
            (self.stream_id is None or event.stream_id == self.stream_id)
            and (self.stream_type is None or event.stream_type == self.stream_type)
            and (self.types is None or event.event_type in self.types)
            and event.stream_type != self.hidden_stream_type
        )


@dataclass(eq=False, slots=True)
class _Subscriber:
    accepts: EventFilter
    queue: asyncio.Queue[RecordedEvent]
    catching_up: bool = False
    """Still reading the store: an overflow then means "read the store further", not an end."""
    overflowed: bool = False
    woken: asyncio.Event = field(default_factory=asyncio.Event)


class LiveFeed:
    def __init__(
        self,
        store: EventStore,
        *,
        buffer_size: int = 1_000,
        poll_interval: float = 1.0,
        batch_size: int = 500,
    ) -> None:
        self.store = store
        self.buffer_size = buffer_size
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.checkpoint: FeedCheckpoint | None = None
        self.follower = FeedFollower(batch_size=batch_size, poll_interval=poll_interval)
        self._subscribers: set[_Subscriber] = set()
        self._started = asyncio.Event()
        self._closed = False

    def wake(self, position: int | None = None) -> None:
        """A commit up to `position` happened somewhere: read the feed now."""
        self.follower.wake(position)

    async def ready(self) -> None:
        """Return once the reader knows where the feed's head is."""
        await self._started.wait()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @property
    def buffered(self) -> int:
        """Events waiting in subscribers' buffers: at most `buffer_size` each."""
        return sum(subscriber.queue.qsize() for subscriber in self._subscribers)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the feed from its current head until `stop`."""
        self.checkpoint = await self.store.feed_head()
        self._started.set()
        await self.follower.follow(stop, self._read_batch)
        self._closed = True
        for subscriber in self._subscribers:
            subscriber.woken.set()

    async def _read_batch(self) -> int:
        """Hand out the next batch of the feed; a failed read is retried at the next wake."""
        assert self.checkpoint is not None
        try:
            batch = await self.store.read_feed(self.checkpoint, limit=self.batch_size)
        except Exception:
            log.warning("live feed could not read the store; retrying", exc_info=True)
            return 0
        if not batch:
            return 0
        self._hand_out(batch)
        self.checkpoint = batch[-1].checkpoint
        self.follower.saw(batch)
        return len(batch)

    def _hand_out(self, events: Sequence[RecordedEvent]) -> None:
        for subscriber in list(self._subscribers):
            if subscriber.overflowed:
                continue
            for event in events:
                if not subscriber.accepts(event):
                    continue
                try:
                    subscriber.queue.put_nowait(event)
                except asyncio.QueueFull:
                    subscriber.overflowed = True
                    # Free its memory at once: what it missed is read from the store, by its
                    # catch-up or by the client resuming with `after`.
                    while not subscriber.queue.empty():
                        subscriber.queue.get_nowait()
                    break
            subscriber.woken.set()

    async def subscribe(
        self, accepts: EventFilter, *, after: FeedCheckpoint | None = None
    ) -> AsyncGenerator[RecordedEvent, None]:
        """Events that `accepts`, after `after` (from the store, then live) or from now.

        The subscription joins the live hand-off at its first step (`anext`).
        """
        await self.ready()
        subscriber = _Subscriber(
            accepts=accepts, queue=asyncio.Queue(self.buffer_size), catching_up=after is not None
        )
        self._subscribers.add(subscriber)
        target = self.checkpoint
        assert target is not None
        # What a subscriber that fell behind resumes after: the last event it was sent, or,
        # from now, the last event before it joined.
        last_position = target.position if after is None else after.position
        last = after  # the last event sent, in feed order (None: from now)
        try:
            if after is not None:
                # The live hand-off fills the queue with events beyond `target` while the store
                # gives those up to it. A queue that overflows meanwhile is dropped and the
                # store read on, to where the reader is by then: a long catch-up cannot fall
                # behind, whatever the live traffic.
                sent = after
                while True:
                    async for event in self._read_store(accepts, sent, target):
                        sent, last_position = event.checkpoint, event.position
                        yield event
                    if not subscriber.overflowed:
                        subscriber.catching_up = False
                        break
                    subscriber.overflowed = False
                    target = self.checkpoint
                    assert target is not None
                last = sent
            while True:
                if subscriber.overflowed:
                    SUBSCRIPTIONS_FELL_BEHIND.inc()
                    raise FellBehind(last_position)
                try:
                    event = subscriber.queue.get_nowait()
                except asyncio.QueueEmpty:
                    if self._closed:
                        return  # the server is shutting down: end the subscription cleanly
                    subscriber.woken.clear()
                    await subscriber.woken.wait()
                    continue
                if last is not None and event.checkpoint <= last:
                    continue  # `after` was beyond where the live reader stood when we joined
                last, last_position = event.checkpoint, event.position
                yield event
        finally:
            self._subscribers.discard(subscriber)

    async def _read_store(
        self, accepts: EventFilter, after: FeedCheckpoint, until: FeedCheckpoint
    ) -> AsyncIterator[RecordedEvent]:
        """The events that `accepts` in (`after`, `until`], filtered by the database."""
        while after < until:
            batch = await self.store.read_feed(
                after,
                limit=self.batch_size,
                stream_id=accepts.stream_id,
                stream_type=accepts.stream_type,
                types=None if accepts.types is None else sorted(accepts.types),
                hidden_stream_type=accepts.hidden_stream_type,
            )
            for event in batch:
                if event.checkpoint > until:
                    return
                yield event
            if len(batch) < self.batch_size:
                return  # nothing more matches up to the head, which is at or beyond `until`
            after = batch[-1].checkpoint


@contextlib.asynccontextmanager
async def running(feed: LiveFeed) -> AsyncIterator[LiveFeed]:
    """Run `feed` for the duration of the block."""
    stop = asyncio.Event()
    task = asyncio.create_task(feed.run(stop), name="live feed")
    try:
        yield feed
    finally:
        stop.set()
        await task
