"""Poison events parked instead of stopping the world (issue 15, item 5): a read model that
still fails on an event after its retries parks it, with the later events of its stream, and
goes on; retry replays them in order, skip drops one; the stop mode is unchanged."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.settings import Settings
from domain import users
from projections.errors import NotParked, UnknownReadModel
from projections.parking import held_behind
from projections.projector import Envelope, Tables, type_names
from projections.runner import ProjectionRunner, ProjectionStatus
from projections.workers import OnFailure
from store.command_handler import CommandHandler
from store.event_store import EventStore
from store.serialization import Aggregates

PARK = OnFailure(retries=1, backoff=0.01, park=True)


class History:
    """One row per user: the versions and names of its events, in the order applied (so an
    event applied out of its stream's order shows). Fails on the positions in `poison`."""

    handles = (users.UserRegistered, users.UserUpdated)
    event_types = type_names(handles)

    def __init__(self, name: str = "history", table: str = "parking_history") -> None:
        self.name = name
        self.table = table
        self.tables: tuple[str, ...] = (table,)
        self.poison: set[int] = set()
        self.tries: Counter[int] = Counter()

    async def apply(
        self,
        connection: AsyncConnection,
        events: Sequence[Envelope[users.UserRegistered | users.UserUpdated]],
        tables: Tables,
    ) -> None:
        table = tables[self.table]
        for envelope in events:
            if envelope.position in self.poison:
                self.tries[envelope.position] += 1
                raise RuntimeError(f"poisoned at {envelope.position}")
            entry = f"{envelope.version}:{envelope.event.name or '-'}"
            await connection.execute(
                text(
                    f"INSERT INTO {table} (stream_id, history) VALUES (:stream, :entry) "
                    f"ON CONFLICT (stream_id) DO UPDATE SET history = {table}.history || ' ' "
                    "|| excluded.history"
                ),
                {"stream": envelope.stream_id, "entry": entry},
            )


@dataclass
class World:
    engine: AsyncEngine
    store: EventStore
    handler: CommandHandler
    positions: dict[str, list[int]]
    """Each user's events' positions, by version."""

    async def register(self, user: str) -> int:
        command = users.RegisterUser(
            user_id=user, email=f"{user}@example.com", name=f"{user}0", age=30
        )
        return await self._send(user, command)

    async def rename(self, user: str) -> int:
        name = f"{user}{len(self.positions[user])}"
        return await self._send(user, users.UpdateUser(user_id=user, name=name))

    async def _send(self, user: str, command: users.Command) -> int:
        outcome = await self.handler.handle(users.DECIDER, user, command)
        (position,) = [e.position for e in outcome.events if e.stream_id == user]
        self.positions.setdefault(user, []).append(position)
        return position

    async def history(self, table: str = "parking_history") -> dict[str, str]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(text(f"SELECT stream_id, history FROM {table}"))
            return {row.stream_id: row.history for row in rows}


def full(user: str, versions: Sequence[int]) -> str:
    return " ".join(f"{v}:{user}{v - 1}" for v in versions)


@pytest.fixture
async def world(engine: AsyncEngine) -> AsyncIterator[World]:
    async with engine.begin() as connection:
        for table in ("parking_history", "reference_history"):
            await connection.execute(
                text(f"CREATE TABLE {table} (stream_id text PRIMARY KEY, history text NOT NULL)")
            )
    aggregates = Aggregates()
    aggregates.register(users.DECIDER)
    store = EventStore(engine, aggregates.upcasters)
    yield World(engine, store, CommandHandler(store, aggregates), {})
    await store.close()


async def settle(runner: ProjectionRunner, name: str) -> ProjectionStatus:
    """Run the runner until `name` has taken every event or stopped (the feed may be held back
    a moment by transactions of other databases of the cluster)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        await runner.run_once()
        (status,) = [s for s in await runner.statuses() if s.name == name]
        if status.status != "running" or status.lag == 0 or loop.time() > deadline:
            return status
        await asyncio.sleep(0.02)


async def runner_for(
    world: World, projector: History, on_failure: OnFailure = PARK, batch_size: int = 100
) -> ProjectionRunner:
    runner = ProjectionRunner(
        world.engine, world.store, [projector], batch_size=batch_size, on_failure=on_failure
    )
    await runner.ensure_checkpoints()
    return runner


async def three_users(world: World) -> None:
    for version in range(3):
        for user in ("a", "b", "c"):
            await (world.register(user) if version == 0 else world.rename(user))


async def test_a_poison_event_parks_the_rest_of_its_stream_and_the_others_go_on(
    world: World,
) -> None:
    await three_users(world)
    projector = History()
    poison = world.positions["b"][1]
    projector.poison = {poison}
    runner = await runner_for(world, projector)

    status = await settle(runner, "history")

    assert (status.status, status.lag, status.parked) == ("running", 0, 2)
    assert status.position == max(max(p) for p in world.positions.values())  # moved on
    parked = await runner.parked("history")
    assert [(p.position, p.stream_id, p.event_type) for p in parked] == [
        (poison, "b", "UserUpdated"),
        (world.positions["b"][2], "b", "UserUpdated"),
    ]
    assert "poisoned at" in parked[0].error and f"position {poison}" in parked[0].error
    assert parked[0].attempts == 2
    assert (parked[1].error, parked[1].attempts) == (held_behind(poison), 0)
    assert await world.history() == {
        "a": full("a", [1, 2, 3]),
        "b": full("b", [1]),
        "c": full("c", [1, 2, 3]),
    }

    # Later events of the parked stream are held too; other streams' are applied.
    await world.rename("b")
    await world.rename("a")
    status = await settle(runner, "history")
    assert (status.status, status.parked) == ("running", 3)
    assert [p.position for p in await runner.parked("history")][-1] == world.positions["b"][3]
    assert (await world.history())["a"] == full("a", [1, 2, 3, 4])

    # Fixed: retry applies them in order and empties the table.
    projector.poison = set()
    retried = await runner.retry_parked("history")
    assert (retried.applied, retried.still_parked) == (3, 0)
    assert await runner.parked() == []
    assert (await world.history())["b"] == full("b", [1, 2, 3, 4])
    (status,) = await runner.statuses()
    assert (status.status, status.parked) == ("running", 0)

    # Nothing is held any more: the stream's next event is applied at once.
    await world.rename("b")
    await settle(runner, "history")
    assert (await world.history())["b"] == full("b", [1, 2, 3, 4, 5])


async def test_a_retry_that_fails_again_keeps_the_event_and_its_stream_parked(
    world: World,
) -> None:
    await three_users(world)
    await world.rename("b")
    b = world.positions["b"]
    projector = History()
    projector.poison = {b[1]}
    runner = await runner_for(world, projector)
    await settle(runner, "history")

    retried = await runner.retry_parked("history")  # not fixed yet
    assert (retried.applied, retried.still_parked) == (0, 3)
    parked = await runner.parked("history")
    assert [(p.position, p.attempts) for p in parked] == [(b[1], 3), (b[2], 0), (b[3], 0)]

    # The first is fixed, a later one of the stream fails: it holds the rest now.
    projector.poison = {b[2]}
    retried = await runner.retry_parked("history")
    assert (retried.applied, retried.still_parked) == (1, 2)
    parked = await runner.parked("history")
    assert [(p.position, p.attempts) for p in parked] == [(b[2], 1), (b[3], 0)]
    assert "poisoned at" in parked[0].error and parked[1].error == held_behind(b[2])
    assert (await world.history())["b"] == full("b", [1, 2])


async def test_skip_drops_one_and_leaves_those_held_behind_it(world: World) -> None:
    await three_users(world)
    b = world.positions["b"]
    projector = History()
    projector.poison = {b[1]}
    runner = await runner_for(world, projector)
    await settle(runner, "history")

    await runner.skip_parked("history", b[1])
    parked = await runner.parked("history")
    assert [(p.position, p.error) for p in parked] == [(b[2], held_behind(b[1]))]
    with pytest.raises(NotParked):
        await runner.skip_parked("history", b[1])
    with pytest.raises(UnknownReadModel):
        await runner.skip_parked("nothing", b[2])
    with pytest.raises(UnknownReadModel):
        await runner.parked("nothing")

    # Still held: the stream's next event waits behind the one left.
    await world.rename("b")
    assert [p.position for p in await runner.parked("history")] == [b[2]]
    await settle(runner, "history")
    assert [p.position for p in await runner.parked("history")] == [b[2], b[3]]
    (status,) = await runner.statuses()
    assert status.parked == 2

    retried = await runner.retry_parked("history")
    assert (retried.applied, retried.still_parked) == (2, 0)
    assert (await world.history())["b"] == "1:b0 3:b2 4:b3"  # the skipped one never applied


async def test_the_stop_mode_is_unchanged(world: World) -> None:
    await three_users(world)
    poison = world.positions["b"][1]
    projector = History()
    projector.poison = {poison}
    runner = await runner_for(world, projector, OnFailure(retries=2, backoff=0.01))

    status = await settle(runner, "history")

    assert (status.status, status.failed_position, status.parked) == ("failed", poison, 0)
    assert "poisoned at" in (status.error or "")
    assert await runner.parked() == []
    stopped_at = [p for ps in world.positions.values() for p in ps if p < poison]
    assert status.position == max(stopped_at)
    assert projector.tries[poison] == 1 + 3  # the batch, then three attempts of its own


async def test_retries_back_off_without_holding_the_batch_transaction(world: World) -> None:
    await world.register("a")
    projector = History()
    runner = await runner_for(
        world, projector, OnFailure(retries=3, backoff=0.1, park=True), batch_size=1
    )
    await settle(runner, "history")
    projector.poison = {await world.register("b")}
    loop = asyncio.get_running_loop()
    started = loop.time()
    running = asyncio.create_task(settle(runner, "history"))
    locked_while_waiting = []
    while not running.done():
        await asyncio.sleep(0.03)
        if projector.tries:  # a failed attempt: the runner sleeps now, most of the time
            async with world.engine.begin() as connection:
                free = await connection.execute(
                    text(
                        "SELECT 1 FROM projection_checkpoints WHERE name = 'history' "
                        "FOR UPDATE SKIP LOCKED"
                    )
                )
                locked_while_waiting.append(free.first() is None)
    status = await running
    waited = loop.time() - started

    (parked,) = await runner.parked("history")
    assert (parked.attempts, status.parked, status.status) == (4, 1, "running")
    assert projector.tries[parked.position] == 4
    assert waited >= 0.1 + 0.2 + 0.4
    assert locked_while_waiting and not all(locked_while_waiting)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_after_a_retry_the_read_model_equals_a_replay_without_poison(
    world: World, seed: int
) -> None:
    chooser = random.Random(seed)
    names = [f"u{n}" for n in range(10)]
    projector = History()
    runner = await runner_for(world, projector, OnFailure(retries=0, park=True), batch_size=7)

    async def write(count: int) -> None:
        for _ in range(count):
            user = chooser.choice(names)
            await (world.rename(user) if user in world.positions else world.register(user))

    async def poison_some() -> None:
        every = sorted(p for ps in world.positions.values() for p in ps)
        projector.poison |= {p for p in every if chooser.random() < 0.06}

    await write(80)
    await poison_some()
    status = await settle(runner, "history")
    await write(40)
    await poison_some()
    status = await settle(runner, "history")
    assert (status.status, status.lag) == ("running", 0)

    # Each stream's applied events are its first versions, the rest parked: never a gap.
    parked = {p.position for p in await runner.parked("history")}
    assert status.parked == len(parked)
    history = await world.history()
    for user, positions in world.positions.items():
        first_parked = next((v for v, p in enumerate(positions, 1) if p in parked), None)
        applied = len(positions) if first_parked is None else first_parked - 1
        assert history.get(user, "") == full(user, range(1, applied + 1)), user
        assert {p for p in positions[applied:]} <= parked
    assert parked  # the seeds poison something

    projector.poison = set()
    retried = await runner.retry_parked("history")
    assert (retried.applied, retried.still_parked) == (len(parked), 0)

    reference = History("reference", "reference_history")
    replay = await runner_for(world, reference)
    assert (await settle(replay, "reference")).parked == 0
    assert await world.history() == await world.history("reference_history")


async def test_a_rebuild_in_park_mode_hands_its_parked_events_over(world: World) -> None:
    await three_users(world)
    await world.rename("b")
    b = world.positions["b"]
    projector = History()
    projector.poison = {b[1]}
    runner = await runner_for(world, projector)
    await settle(runner, "history")
    assert len(await runner.parked("history")) == 3

    projector.poison = {b[2]}  # the rebuild meets another fault
    assert await runner.rebuild("history")
    for _ in range(100):
        await runner.run_once()
        if [s.status for s in await runner.statuses()] == ["running"]:
            break
    parked = await runner.parked("history")
    assert [(p.position, p.error) for p in parked] == [
        (b[2], parked[0].error),
        (b[3], held_behind(b[2])),
    ]
    assert "poisoned at" in parked[0].error
    assert (await world.history())["b"] == full("b", [1, 2])


def test_the_settings_name_the_mode_and_the_retries() -> None:
    assert (Settings.from_env({}).park_failed_events, Settings().projection_retries) == (False, 3)
    chosen = Settings.from_env(
        {"CHRONICLE_ON_PROJECTION_ERROR": "Park", "CHRONICLE_PROJECTION_RETRIES": "5"}
    )
    assert (chosen.park_failed_events, chosen.projection_retries) == (True, 5)
    with pytest.raises(ValueError, match="stop or park"):
        Settings.from_env({"CHRONICLE_ON_PROJECTION_ERROR": "ignore"})
    with pytest.raises(ValueError, match="whole number"):
        Settings.from_env({"CHRONICLE_PROJECTION_RETRIES": "-1"})
