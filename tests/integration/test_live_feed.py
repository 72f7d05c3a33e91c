"""The live feed's reader and subscribers on a real store: catch-up, hand-off, bounded buffers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from projections.live import EventFilter, FellBehind, LiveFeed, running
from store.event_store import EventStore
from store.events import FEED_START, NewEvent, RecordedEvent, StreamAppend, StreamState
from tests.integration.test_feed import open_append
from tests.visibility import until_all_visible

EVERYTHING = EventFilter()


async def append(store: EventStore, count: int, stream_type: str = "Tick") -> list[int]:
    positions = []
    for i in range(count):
        result = await store.append(
            [
                StreamAppend(
                    stream_id=f"{stream_type}-{i % 3}",
                    stream_type=stream_type,
                    expected=StreamState.ANY,
                    events=[NewEvent(event_type="Ticked", data={"i": i})],
                )
            ]
        )
        positions.append(result.position)
    return positions


@pytest.fixture
async def feed(store: EventStore) -> AsyncIterator[LiveFeed]:
    """A live feed woken by this process's appends, with a small buffer and no safety poll."""
    live = LiveFeed(store, buffer_size=5, poll_interval=3600, batch_size=4)
    store.doorbell.listen_locally(live.wake)
    async with running(live):
        yield live


async def joined(feed: LiveFeed, count: int) -> None:
    """Let the subscriptions just started take their first step, which registers them."""
    await feed.ready()
    await asyncio.sleep(0)  # one turn of the loop: each pending first step runs
    assert feed.subscriber_count == count


async def take(events: AsyncIterator[RecordedEvent], count: int) -> list[int]:
    async with asyncio.timeout(10):
        return [(await anext(events)).position for _ in range(count)]


async def test_a_subscriber_that_falls_behind_is_told_where_to_resume_and_others_carry_on(
    store: EventStore, feed: LiveFeed
) -> None:
    slow = feed.subscribe(EVERYTHING)
    fast = feed.subscribe(EVERYTHING)
    first_slow = asyncio.ensure_future(anext(slow))
    first_fast = asyncio.ensure_future(anext(fast))
    await joined(feed, 2)
    written = await append(store, 1)
    assert (await first_slow).position == written[0]
    assert (await first_fast).position == written[0]

    # The slow one reads nothing more while 20 events go by; the fast one keeps up.
    keeping_up = asyncio.ensure_future(take(fast, 20))
    more = await append(store, 20)
    assert await keeping_up == more
    assert feed.buffered <= feed.buffer_size  # the slow buffer was freed when it overflowed

    with pytest.raises(FellBehind) as behind:
        await anext(slow)
    assert behind.value.last_position == written[0]
    assert f'after: "{written[0]}"' in str(behind.value)
    await fast.aclose()
    assert feed.subscriber_count == 0


async def test_a_subscriber_from_now_that_falls_behind_before_its_first_event_can_resume(
    store: EventStore, database_url: str
) -> None:
    before = await append(store, 2)
    feed = LiveFeed(store, buffer_size=2, poll_interval=3600)
    async with running(feed):
        events = feed.subscribe(EVERYTHING)
        pending = asyncio.ensure_future(anext(events))
        await joined(feed, 1)
        # An open transaction holds the feed back, so the reader gets all 6 in one batch.
        blocker, _ = await open_append(database_url, "blocker")
        await append(store, 5)
        await blocker.execute("COMMIT")
        await blocker.close()
        feed.wake()  # 6 events for a buffer of 2: it overflows before anything is sent
        with pytest.raises(FellBehind) as behind:
            async with asyncio.timeout(10):
                await pending
    # Resuming after the last event before it joined misses nothing and repeats nothing.
    assert behind.value.last_position == before[-1]


async def test_a_long_catch_up_under_live_traffic_does_not_fall_behind(
    store: EventStore, feed: LiveFeed
) -> None:
    history = await append(store, 30)
    events = feed.subscribe(EVERYTHING, after=FEED_START)
    received = await take(events, 3)
    # While this subscriber is still reading the store, more arrive live than its buffer holds.
    live = await append(store, 12)
    received += await take(events, 39)
    assert received == history + live
    assert feed.subscriber_count == 1
    await events.aclose()


async def test_after_beyond_the_live_reader_repeats_nothing(store: EventStore) -> None:
    # Not woken by appends: the reader stays where it started until told to read.
    feed = LiveFeed(store, buffer_size=100, poll_interval=3600)
    async with running(feed):
        await feed.ready()
        written = await append(store, 10)
        await until_all_visible(store)  # one wake reads them: no transaction holds them back
        after = await store.checkpoint_at(written[4])
        assert after is not None
        events = feed.subscribe(EVERYTHING, after=after)
        first = asyncio.ensure_future(anext(events))
        await joined(feed, 1)
        feed.wake()
        assert [(await first).position, *await take(events, 4)] == written[5:]
        extra = await append(store, 1)
        await until_all_visible(store)
        feed.wake()
        assert await take(events, 1) == extra
        await events.aclose()


async def test_filters_apply_to_the_catch_up_and_the_live_events(
    store: EventStore, feed: LiveFeed
) -> None:
    ticks = await append(store, 6, "Tick")
    await append(store, 6, "Tock")
    events = feed.subscribe(EventFilter(stream_type="Tick", stream_id="Tick-1"), after=FEED_START)
    assert await take(events, 2) == [ticks[1], ticks[4]]
    await append(store, 3, "Tock")
    later = await append(store, 3, "Tick")
    assert await take(events, 1) == [later[1]]
    await events.aclose()


async def test_stopping_the_feed_ends_its_subscriptions(store: EventStore) -> None:
    feed = LiveFeed(store, poll_interval=3600)
    async with running(feed):
        events = feed.subscribe(EVERYTHING)
        pending = asyncio.ensure_future(anext(events))
        await joined(feed, 1)
    with pytest.raises(StopAsyncIteration):
        async with asyncio.timeout(10):
            await pending
