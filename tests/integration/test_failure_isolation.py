"""One failure isolation for projectors and process managers: a failing batch is taken again
event by event, and the failing event stops its worker exactly there."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain import users
from projections.projector import Envelope, Record, Tables
from projections.runner import ProjectionRunner
from store.command_handler import CommandHandler
from store.event_store import EventStore
from store.serialization import Aggregates
from tests.visibility import until_all_visible

NAMES = ["a", "b", "c", "bad", "d", "e"]


class FailingProjector:
    name = "failing-projector"
    tables: tuple[str, ...] = ()
    handles = (users.UserRegistered,)
    event_types = frozenset({"UserRegistered"})

    def __init__(self) -> None:
        self.taken: list[str] = []

    async def apply(
        self,
        connection: AsyncConnection,
        events: Sequence[Envelope[users.UserRegistered]],
        tables: Tables,
    ) -> None:
        if any(event.stream_id == "bad" for event in events):
            raise RuntimeError("cannot take this one")
        self.taken.extend(event.stream_id for event in events)


class FailingProcess:
    name = "failing-process"
    handles = (users.UserRegistered,)
    event_types = frozenset({"UserRegistered"})

    def __init__(self) -> None:
        self.taken: list[str] = []

    async def react(self, events: Sequence[Envelope[users.UserRegistered]]) -> Record:
        if any(event.stream_id == "bad" for event in events):
            raise RuntimeError("cannot take this one")
        taken = [event.stream_id for event in events]

        async def record(connection: AsyncConnection) -> None:
            self.taken.extend(taken)

        return record


@pytest.fixture
async def store(engine: AsyncEngine) -> AsyncIterator[EventStore]:
    aggregates = Aggregates()
    aggregates.register(users.DECIDER)
    store = EventStore(engine, aggregates.upcasters)
    handler = CommandHandler(store, aggregates)
    for name in NAMES:
        await handler.handle(
            users.DECIDER,
            name,
            users.RegisterUser(user_id=name, email=f"{name}@example.com", name="Ada", age=30),
        )
    yield store
    await store.close()


@pytest.mark.parametrize("kind", ["projector", "process manager"])
async def test_both_kinds_stop_exactly_at_the_failing_event(
    engine: AsyncEngine, store: EventStore, kind: str
) -> None:
    worker: FailingProjector | FailingProcess
    if kind == "projector":
        worker = FailingProjector()
        runner = ProjectionRunner(engine, store, [worker], batch_size=100)
    else:
        worker = FailingProcess()
        runner = ProjectionRunner(engine, store, [], process_managers=[worker], batch_size=100)
    await runner.ensure_checkpoints()
    # Another test's transaction anywhere on the server holds the gap-safe feed back a moment.
    await until_all_visible(store)
    feed = await store.read_feed(limit=100)
    (bad,) = [e for e in feed if e.stream_id == "bad" and e.event_type == "UserRegistered"]
    before_bad = feed[feed.index(bad) - 1]

    while await runner.run_once():  # the whole history is one batch, and it fails
        pass

    (status,) = await runner.statuses()
    assert (status.status, status.failed_position) == ("failed", bad.position)
    assert "cannot take this one" in (status.error or "")
    assert status.position == before_bad.position  # every event before it, and none after
    assert worker.taken == ["a", "b", "c"]
