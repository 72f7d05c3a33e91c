"""The event store on a real PostgreSQL: appends, versions, idempotency, append-only."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from store.database import create_engine
from store.errors import CommandAlreadyProcessed, DuplicateEventId, WrongExpectedVersion
from store.event_store import EventStore
from store.events import NewEvent, StreamAppend, StreamState
from store.migrations import current_revision, downgrade, upgrade


def appending(stream_id: str, expected: StreamState | int, *types: str) -> StreamAppend:
    return StreamAppend(
        stream_id=stream_id,
        stream_type="Test",
        expected=expected,
        events=[NewEvent(event_type=t, data={"n": i}) for i, t in enumerate(types)],
    )


async def count_events(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT count(*) FROM events"))).scalar_one())


async def test_append_numbers_versions_and_positions(
    store: EventStore, engine: AsyncEngine
) -> None:
    first = await store.append([appending("s", StreamState.NO_STREAM, "A", "B")])
    second = await store.append([appending("s", 2, "C")])
    assert [e.version for e in first.events] == [1, 2]
    assert second.events[0].version == 3
    assert second.versions == {"s": 3}
    assert first.events[1].position < second.events[0].position
    assert [e.event_type for e in await store.read_stream("s")] == ["A", "B", "C"]
    assert [e.version for e in await store.read_stream("s", from_version=2, to_version=2)] == [2]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (False, StreamState.STREAM_EXISTS),
        (False, 1),
        (True, StreamState.NO_STREAM),
        (True, 0),
        (True, 2),
    ],
)
async def test_wrong_expected_version_writes_nothing(
    store: EventStore, engine: AsyncEngine, setup: bool, expected: StreamState | int
) -> None:
    if setup:
        await store.append([appending("s", StreamState.NO_STREAM, "A")])
    before = await count_events(engine)
    with pytest.raises(WrongExpectedVersion) as refused:
        await store.append([appending("s", expected, "B")])
    assert refused.value.stream_id == "s"
    assert refused.value.actual == (1 if setup else None)
    assert await count_events(engine) == before


async def test_any_and_stream_exists_expectations(store: EventStore, engine: AsyncEngine) -> None:
    await store.append([appending("s", StreamState.ANY, "A")])
    await store.append([appending("s", StreamState.ANY, "B")])
    result = await store.append([appending("s", StreamState.STREAM_EXISTS, "C")])
    assert result.versions == {"s": 3}


async def test_concurrent_appends_with_the_same_expected_version_let_exactly_one_win(
    store: EventStore,
) -> None:
    await store.append([appending("race", StreamState.NO_STREAM, "Start")])

    async def contender(i: int) -> str:
        try:
            await store.append([appending("race", 1, f"Won{i}")])
            return "won"
        except WrongExpectedVersion:
            return "conflict"

    outcomes = await asyncio.gather(*(contender(i) for i in range(32)))
    assert outcomes.count("won") == 1
    assert outcomes.count("conflict") == 31
    versions = [e.version for e in await store.read_stream("race")]
    assert versions == [1, 2]


async def test_many_concurrent_writers_leave_no_gap_or_duplicate_version(
    store: EventStore,
) -> None:

    async def writer() -> int:
        written = 0
        for _ in range(10):
            try:
                await store.append([appending("busy", StreamState.ANY, "E")])
                written += 1
            except WrongExpectedVersion:  # pragma: no cover - ANY never conflicts
                raise
        return written

    total = sum(await asyncio.gather(*(writer() for _ in range(16))))
    versions = [e.version for e in await store.read_stream("busy")]
    assert versions == list(range(1, total + 1))


async def test_multi_stream_append_is_all_or_nothing(
    store: EventStore, engine: AsyncEngine
) -> None:
    await store.append([appending("taken", StreamState.NO_STREAM, "Claimed")])
    with pytest.raises(WrongExpectedVersion) as refused:
        await store.append(
            [
                appending("fresh", StreamState.NO_STREAM, "A"),
                appending("taken", StreamState.NO_STREAM, "B"),
            ]
        )
    assert refused.value.stream_id == "taken"
    assert await store.read_stream("fresh") == []
    assert await store.stream_version("fresh") is None
    assert await count_events(engine) == 1


async def test_event_ids_are_unique(store: EventStore, engine: AsyncEngine) -> None:
    event = NewEvent(event_type="A", data={})
    await store.append(
        [StreamAppend(stream_id="a", stream_type="T", expected=StreamState.ANY, events=[event])]
    )
    with pytest.raises(DuplicateEventId):
        await store.append(
            [StreamAppend(stream_id="b", stream_type="T", expected=StreamState.ANY, events=[event])]
        )
    assert await store.stream_version("b") is None


async def test_a_command_id_is_recorded_once(store: EventStore, engine: AsyncEngine) -> None:
    first = await store.append(
        [appending("s", StreamState.NO_STREAM, "A", "B")], command_id="cmd-1"
    )
    with pytest.raises(CommandAlreadyProcessed):
        await store.append([appending("t", StreamState.NO_STREAM, "C")], command_id="cmd-1")
    processed = await store.processed_command("cmd-1")
    assert processed is not None
    assert [e.event_id for e in processed.events] == [e.event_id for e in first.events]
    assert (processed.stream_id, processed.version) == ("s", 2)
    assert await store.stream_version("t") is None
    assert await store.processed_command("unknown") is None


@pytest.mark.parametrize(
    "statement",
    ["UPDATE events SET data = '{}'", "DELETE FROM events", "TRUNCATE events"],
)
async def test_events_are_append_only(
    store: EventStore, engine: AsyncEngine, statement: str
) -> None:
    await store.append([appending("s", StreamState.NO_STREAM, "A")])
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"):
        async with engine.begin() as connection:
            await connection.execute(text(statement))
    assert await count_events(engine) == 1


async def test_the_first_migration_downgrades_and_upgrades_again(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url, pool_size=2)
    try:
        await upgrade(engine)
        assert await current_revision(engine) is not None
        await downgrade(engine, "base")
        assert await current_revision(engine) is None
        async with engine.connect() as connection:
            tables = (
                await connection.execute(
                    text(
                        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename <> 'alembic_version'"
                    )
                )
            ).scalar_one()
        assert tables == 0
        await upgrade(engine)
        store = EventStore(engine)
        await store.append([appending(str(uuid.uuid4()), StreamState.ANY, "A")])
        await store.close()
    finally:
        await engine.dispose()


async def test_racing_creations_of_one_stream_do_not_exhaust_a_small_pool(
    database_url: str,
) -> None:
    """Refusals are explained with a connection of their own, after the append's is returned:
    thirty appends racing to create one stream through a pool of two (and two overflow) used to
    hold every connection while each waited for another, until the pool timed out."""
    small = create_engine(database_url, pool_size=2)
    store = EventStore(small)
    try:
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                *(store.append([appending("race", StreamState.NO_STREAM, "A")]) for _ in range(30)),
                return_exceptions=True,
            ),
            timeout=20,  # the pool's own timeout is 30 s: a deadlock fails here first
        )
    finally:
        await store.close()
        await small.dispose()
    refused = [o for o in outcomes if isinstance(o, WrongExpectedVersion)]
    assert len(refused) == 29, outcomes
    assert {r.actual for r in refused} == {1}
