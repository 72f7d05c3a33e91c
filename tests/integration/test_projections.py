"""The projection runner and the users read models on a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain import users
from projections.projector import Envelope, Record, Tables
from projections.runner import ProjectionRunner, StaleRead, UnknownPosition
from projections.user_queries import list_users, user_summary
from projections.users import UsersProjector, UserSummaryProjector
from store.command_handler import CommandHandler
from store.errors import WrongExpectedVersion
from store.event_store import EventStore
from store.serialization import Aggregates
from tests.visibility import until_all_visible


@dataclass
class World:
    handler: CommandHandler
    runner: ProjectionRunner
    engine: AsyncEngine


@pytest.fixture
async def world(engine: AsyncEngine) -> AsyncIterator[World]:
    aggregates = Aggregates()
    aggregates.register(users.DECIDER)
    store = EventStore(engine, aggregates.upcasters)
    runner = ProjectionRunner(
        engine, store, [UsersProjector(), UserSummaryProjector()], batch_size=7
    )
    await runner.ensure_checkpoints()
    yield World(CommandHandler(store, aggregates), runner, engine)
    await store.close()


async def register(world: World, user_id: str, age: int, name: str = "Ada Lovelace") -> int:
    outcome = await world.handler.handle(
        users.DECIDER,
        user_id,
        users.RegisterUser(user_id=user_id, email=f"{user_id}@example.com", name=name, age=age),
    )
    return next(e.position for e in outcome.events if e.stream_id == user_id)


async def drain(runner: ProjectionRunner) -> None:
    """Run passes until the runner has read everything written so far."""
    await until_all_visible(runner.store)
    while await runner.run_once():
        pass


async def test_users_and_summary_follow_the_log(world: World) -> None:
    await register(world, "u1", 15, "Ada Lovelace")
    await register(world, "u2", 30, "Grace Hopper")
    await register(world, "u3", 70, "Alan Turing")
    await world.handler.handle(
        users.DECIDER, "u1", users.UpdateUser(user_id="u1", age=21, name="Ada King")
    )
    await drain(world.runner)

    page = await list_users(world.engine, first=10)
    assert [(u.id, u.age, u.age_group, u.version) for _, u in page.items] == [
        ("u1", 21, "ADULT", 2),
        ("u2", 30, "ADULT", 1),
        ("u3", 70, "SENIOR", 1),
    ]
    summary = await user_summary(world.engine)
    assert summary.total_users == 3
    assert summary.average_age == pytest.approx((21 + 30 + 70) / 3)
    assert summary.by_age_group == {"TEEN": 0, "ADULT": 2, "SENIOR": 1}
    found = await list_users(world.engine, first=10, search="ada ki")
    assert [u.id for _, u in found.items] == ["u1"]
    assert (await list_users(world.engine, first=10, search="hopper")).total_count == 1


async def test_pages_follow_cursors(world: World) -> None:
    for i in range(5):
        await register(world, f"p{i}", 20 + i)
    await drain(world.runner)
    first = await list_users(world.engine, first=2)
    assert (first.total_count, first.has_next_page) == (5, True)
    second = await list_users(world.engine, first=2, after=first.end_cursor)
    third = await list_users(world.engine, first=2, after=second.end_cursor)
    ids = [u.id for page in (first, second, third) for _, u in page.items]
    assert ids == [f"p{i}" for i in range(5)]
    assert third.has_next_page is False


async def test_wait_for_returns_once_the_position_is_applied(world: World) -> None:
    position = await register(world, "w1", 40)
    with pytest.raises(StaleRead):
        await world.runner.wait_for("users", position, within=0.1)
    waiting = asyncio.create_task(world.runner.wait_for("users", position, within=5))
    await drain(world.runner)
    await waiting
    with pytest.raises(UnknownPosition):
        await world.runner.wait_for("users", position + 1000, within=0.1)


class Exploding:
    name = "exploding"
    tables = ("users_view",)
    handles = (users.UserRegistered,)
    event_types = frozenset({"UserRegistered"})

    async def apply(
        self,
        connection: AsyncConnection,
        events: Sequence[Envelope[users.UserRegistered]],
        tables: Tables,
    ) -> None:
        if any(event.stream_id == "bad" for event in events):
            raise RuntimeError("cannot project this one")


async def test_a_failing_event_stops_only_its_projector_at_that_event(
    world: World, engine: AsyncEngine
) -> None:
    world.runner.projectors["exploding"] = Exploding()
    await world.runner.ensure_checkpoints()
    await register(world, "good", 30)
    bad_position = await register(world, "bad", 30)
    await register(world, "after", 30)
    await drain(world.runner)

    statuses = {s.name: s for s in await world.runner.statuses()}
    assert statuses["exploding"].status == "failed"
    assert statuses["exploding"].failed_position == bad_position
    assert "cannot project this one" in (statuses["exploding"].error or "")
    assert statuses["exploding"].position < bad_position
    assert statuses["users"].status == "running" and statuses["users"].lag == 0
    assert (await user_summary(engine)).total_users == 3


class ExplodingProcess:
    """A process manager that cannot react to user "bad", and is only busy for "busy"."""

    name = "exploding-process"
    handles = (users.UserRegistered,)
    event_types = frozenset({"UserRegistered"})

    def __init__(self) -> None:
        self.reacted: list[str] = []
        self.busy = True

    async def react(self, events: Sequence[Envelope[users.UserRegistered]]) -> Record:
        for event in events:
            if event.stream_id == "busy" and self.busy:
                self.busy = False
                raise WrongExpectedVersion(event.stream_id, 1, 2)
            if event.stream_id == "bad":
                raise RuntimeError("cannot react to this one")
        self.reacted.extend(event.stream_id for event in events)

        async def record(connection: AsyncConnection) -> None:
            pass

        return record


async def test_a_failing_event_stops_only_its_process_manager_at_that_event(
    world: World,
) -> None:
    process = ExplodingProcess()
    world.runner.process_managers[process.name] = process
    await world.runner.ensure_checkpoints()
    busy_position = await register(world, "busy", 30)
    bad_position = await register(world, "bad", 30)
    await register(world, "after", 30)

    await world.runner.run_once()  # contention is "not now": the batch waits for the next turn
    assert await checkpoint_position(world, process.name) < busy_position
    await drain(world.runner)

    statuses = {s.name: s for s in await world.runner.statuses()}
    assert statuses[process.name].status == "failed"
    assert statuses[process.name].failed_position == bad_position
    assert "cannot react to this one" in (statuses[process.name].error or "")
    assert process.reacted == ["busy"]  # the batch that failed is redone event by event
    assert statuses["users"].status == "running" and statuses["users"].lag == 0


async def checkpoint_position(world: World, name: str) -> int:
    (status,) = [s for s in await world.runner.statuses() if s.name == name]
    return status.position


class Late:
    """A read model added to a database that already has a history."""

    name = "late"
    tables: tuple[str, ...] = ()
    handles = (users.UserRegistered,)
    event_types = frozenset({"UserRegistered"})

    async def apply(
        self,
        connection: AsyncConnection,
        events: Sequence[Envelope[users.UserRegistered]],
        tables: Tables,
    ) -> None:
        pass


async def test_a_projector_far_behind_holds_no_one_back(world: World) -> None:
    for n in range(30):
        await register(world, f"old{n}", 30)
    await drain(world.runner)
    world.runner.projectors["late"] = Late()
    await world.runner.ensure_checkpoints()  # at the start of the feed, 30 events behind
    position = await register(world, "new", 30)
    # The feed is gap-safe across the whole cluster: a transaction of another database can hold
    # the new event back for a moment. The pass below must be able to read it.
    target = await world.runner.store.checkpoint_at(position)
    assert target is not None
    async with asyncio.timeout(10):
        while await world.runner.store.feed_head() < target:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await world.runner.run_once()  # one pass: batches of 7
    await world.runner.wait_for("users", position, within=0)
    assert 0 < await checkpoint_position(world, "late") < position
    await drain(world.runner)
    assert await checkpoint_position(world, "late") >= position


async def test_two_runners_elect_one_leader(world: World, engine: AsyncEngine) -> None:
    other = ProjectionRunner(engine, world.runner.store, [UsersProjector()], poll_interval=0.05)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in (world.runner, other)]
    try:
        async with asyncio.timeout(10):
            while not (world.runner.is_leader or other.is_leader):  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # a flag another task sets
        # The lock is exclusive: a third contender cannot take it while a leader holds it.
        async with engine.connect() as connection:
            taken = await connection.execute(text("SELECT pg_try_advisory_lock(7463002)"))
            assert taken.scalar_one() is False
        assert world.runner.is_leader != other.is_leader
        position = await register(world, "led", 33)
        await world.runner.wait_for("users", position, within=5)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    async with engine.connect() as connection:
        count = (await connection.execute(text("SELECT count(*) FROM users_view"))).scalar_one()
    assert count == 1


async def table_rows(engine: AsyncEngine, table: str) -> list[tuple[object, ...]]:
    async with engine.connect() as connection:
        rows = await connection.execute(text(f"SELECT * FROM {table} ORDER BY 1"))
        return [tuple(row) for row in rows]


async def test_a_rebuild_yields_the_live_tables_and_never_shows_a_partial_one(
    world: World, engine: AsyncEngine
) -> None:
    for i in range(40):
        await register(world, f"r{i:02}", 13 + i * 3)
    for i in range(0, 40, 3):
        await world.handler.handle(
            users.DECIDER, f"r{i:02}", users.UpdateUser(user_id=f"r{i:02}", age=99)
        )
    await drain(world.runner)
    live = {
        t: await table_rows(engine, t) for t in ("users_view", "user_summary", "user_summary_ages")
    }

    seen_counts: list[int] = []
    done = asyncio.Event()

    async def query_meanwhile() -> None:
        while not done.is_set():
            async with engine.connect() as connection:
                seen_counts.append(
                    (await connection.execute(text("SELECT count(*) FROM users_view"))).scalar_one()
                )
            await asyncio.sleep(0)

    querying = asyncio.create_task(query_meanwhile())
    progress: list[tuple[int, int]] = []
    await world.runner.drive_rebuild(
        "users", lambda position, head: progress.append((position, head))
    )
    await world.runner.drive_rebuild("user_summary", lambda position, head: None)
    done.set()
    await querying

    assert len(progress) > 3, "a batch size of 7 takes several steps"
    assert seen_counts and set(seen_counts) == {40}
    for table, rows in live.items():
        assert await table_rows(engine, table) == rows, table
    statuses = {s.name: s for s in await world.runner.statuses()}
    assert statuses["users"].status == "running" and statuses["users"].lag == 0
    assert "users:rebuild" not in statuses


async def test_the_live_projection_keeps_up_during_a_rebuild(
    world: World, engine: AsyncEngine
) -> None:
    await register(world, "before", 30)
    await drain(world.runner)
    assert await world.runner.rebuild("users")
    assert not await world.runner.rebuild("users"), "a second request joins the running rebuild"
    statuses = {s.name: s.status for s in await world.runner.statuses()}
    assert statuses["users"] == "rebuilding"
    position = await register(world, "during", 31)
    await drain(world.runner)
    await world.runner.wait_for("users", position, within=1)
    assert [r[0] for r in await table_rows(engine, "users_view")] == ["before", "during"]
    assert {s.name: s.status for s in await world.runner.statuses()}["users"] == "running"
