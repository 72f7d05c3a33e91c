"""The gap-safe feed: an open transaction holds readers back, and nothing is ever skipped."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from store.database import plain_url
from store.event_store import EventStore
from store.events import (
    FEED_START,
    FeedCheckpoint,
    NewEvent,
    RecordedEvent,
    StreamAppend,
    StreamState,
)
from tests.visibility import all_visible, until_all_visible


def one_event(stream_id: str) -> StreamAppend:
    return StreamAppend(
        stream_id=stream_id,
        stream_type="Test",
        expected=StreamState.ANY,
        events=[NewEvent(event_type="Happened", data={})],
    )


async def open_append(database_url: str, stream_id: str) -> tuple[asyncpg.Connection, int]:
    """Append one event in a transaction left open; returns the connection and the position."""
    connection = await asyncpg.connect(plain_url(database_url))
    await connection.execute("BEGIN")
    position = await connection.fetchval(
        "SELECT position FROM append_to_streams($1, '{Test}', '{-1}', $2, '{1}', '{1}', "
        "'{Slow}', '{1}', '{\"{}\"}'::jsonb[], '{}'::jsonb, NULL, NULL, NULL)",
        [stream_id],
        [uuid.uuid4()],
    )
    return connection, position


async def until_visible(store: EventStore, checkpoint: FeedCheckpoint) -> None:
    """Wait until the feed can deliver `checkpoint`: transaction ids are cluster-wide, so a
    transaction of another database on the test server may hold it back for a moment."""
    async with asyncio.timeout(20):
        while await store.feed_head() < checkpoint:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def read_to_end(store: EventStore, after: FeedCheckpoint) -> list[RecordedEvent]:
    seen: list[RecordedEvent] = []
    while batch := await store.read_feed(after, limit=50):
        seen.extend(batch)
        after = batch[-1].checkpoint
    return seen


async def test_an_uncommitted_append_holds_the_feed_back(
    store: EventStore, engine: AsyncEngine, database_url: str
) -> None:
    before = await store.append([one_event("early")])
    slow, slow_position = await open_append(database_url, "slow")
    after = [await store.append([one_event(f"later-{i}")]) for i in range(3)]
    await until_visible(store, before.events[-1].checkpoint)

    # The later appends committed and took higher positions, but the feed stops short of them.
    first_read = await read_to_end(store, FEED_START)
    assert [e.position for e in first_read] == [before.position]
    assert all(r.position > slow_position for r in after)

    await slow.execute("COMMIT")
    await slow.close()
    await until_visible(store, after[-1].events[-1].checkpoint)
    second_read = await read_to_end(store, first_read[-1].checkpoint)
    assert [e.position for e in second_read] == [slow_position] + [r.position for r in after]


async def test_a_rolled_back_append_leaves_no_hole_that_blocks_the_feed(
    store: EventStore, database_url: str
) -> None:
    slow, _ = await open_append(database_url, "doomed")
    done = await store.append([one_event("kept")])
    await slow.execute("ROLLBACK")
    await slow.close()
    assert [e.position for e in await read_to_end(store, FEED_START)] == [done.position]


async def test_concurrent_writers_and_a_slow_transaction_lose_nothing(
    store: EventStore, database_url: str
) -> None:
    """16 writers append while a reader follows the feed and one transaction stays open."""
    writing = asyncio.Event()
    stop_reading = asyncio.Event()
    received: list[RecordedEvent] = []

    async def writer(w: int) -> None:
        for i in range(25):
            await store.append([one_event(f"writer-{w}-{i % 3}")])
            if w == 0 and i == 5:
                writing.set()

    async def reader() -> None:
        checkpoint = FEED_START
        while True:
            done = stop_reading.is_set()
            batch = await store.read_feed(checkpoint, limit=37)
            received.extend(batch)
            if batch:
                checkpoint = batch[-1].checkpoint
            elif done and await all_visible(store):
                return
            else:
                await asyncio.sleep(0.005)  # polling cadence of a follower, not synchronisation

    reading = asyncio.create_task(reader())
    writers = [asyncio.create_task(writer(w)) for w in range(16)]
    await writing.wait()
    slow, slow_position = await open_append(database_url, "slow-one")
    await asyncio.gather(*writers[:8])
    await slow.execute("COMMIT")
    await slow.close()
    await asyncio.gather(*writers[8:])
    stop_reading.set()
    await reading

    positions = [e.position for e in received]
    assert len(positions) == len(set(positions)), "an event was delivered twice"
    everything = [e.position for e in await store.read_all(limit=10_000)]
    assert sorted(positions) == everything, "an event was skipped"
    assert slow_position in positions
    assert len(everything) == 16 * 25 + 1
    by_stream: dict[str, list[int]] = {}
    for event in received:
        by_stream.setdefault(event.stream_id, []).append(event.version)
    assert all(v == list(range(1, len(v) + 1)) for v in by_stream.values())


async def test_the_feed_filters_on_the_server(store: EventStore) -> None:
    await store.append([one_event("a")])
    await store.append(
        [
            StreamAppend(
                stream_id="b",
                stream_type="Other",
                expected=StreamState.ANY,
                events=[NewEvent(event_type="Else", data={})],
            )
        ]
    )
    await until_all_visible(store)
    assert [e.stream_id for e in await store.read_feed(stream_id="b")] == ["b"]
    assert [e.stream_id for e in await store.read_feed(stream_type="Test")] == ["a"]
    assert [e.stream_id for e in await store.read_feed(types=["Else"])] == ["b"]


async def test_a_position_gives_its_feed_checkpoint(store: EventStore) -> None:
    first = await store.append([one_event("a")])
    second = await store.append([one_event("b")])
    await until_visible(store, second.events[-1].checkpoint)
    checkpoint = await store.checkpoint_at(first.position)
    assert checkpoint == first.events[0].checkpoint
    assert [e.position for e in await store.read_feed(checkpoint)] == [second.position]
    assert await store.checkpoint_at(10_000) is None
