"""The command handler on a real PostgreSQL: retries, claims, idempotency, snapshots, upcasting."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain import users
from domain.decider import Decider
from domain.errors import Duplicate, NotFound
from store.command_handler import CommandContext, CommandHandler
from store.errors import WrongExpectedVersion
from store.event_store import EventStore
from store.events import NewEvent, StreamAppend, StreamState
from store.serialization import Aggregates, UnregisteredDecider


@pytest.fixture
def aggregates() -> Aggregates:
    aggregates = Aggregates()
    aggregates.register(users.DECIDER)
    return aggregates


@pytest.fixture
async def handler(engine: AsyncEngine, aggregates: Aggregates) -> CommandHandler:
    store = EventStore(engine, aggregates.upcasters)
    yield CommandHandler(store, aggregates)
    await store.close()


async def count_events(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT count(*) FROM events"))).scalar_one())


def register(user_id: str, email: str = "ada@example.com") -> users.RegisterUser:
    return users.RegisterUser(user_id=user_id, email=email, name="Ada", age=36)


async def test_registration_claims_the_email_in_the_same_append(handler: CommandHandler) -> None:
    outcome = await handler.handle(users.DECIDER, "u1", register("u1"))
    assert (outcome.stream_id, outcome.version) == ("u1", 1)
    assert {e.stream_id for e in outcome.events} == {"u1", "user-email:ada@example.com"}
    assert outcome.position == max(e.position for e in outcome.events)


async def test_a_taken_email_in_any_case_is_duplicate_and_writes_nothing(
    handler: CommandHandler, engine: AsyncEngine
) -> None:
    await handler.handle(users.DECIDER, "u1", register("u1"))
    before = await count_events(engine)
    with pytest.raises(Duplicate):
        await handler.handle(users.DECIDER, "u2", register("u2", email="ADA@Example.COM"))
    assert await count_events(engine) == before
    assert await handler.store.stream_version("u2") is None


async def test_the_same_command_id_returns_the_first_result(
    handler: CommandHandler, engine: AsyncEngine
) -> None:
    context = CommandContext(command_id="register-once")
    first = await handler.handle(users.DECIDER, "u1", register("u1"), context=context)
    again = await handler.handle(users.DECIDER, "u1", register("u1"), context=context)
    assert again.replayed
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]
    assert (again.version, again.position) == (first.version, first.position)
    assert await count_events(engine) == 2


async def test_the_same_command_id_sent_concurrently_writes_once(
    handler: CommandHandler, engine: AsyncEngine
) -> None:
    await handler.handle(users.DECIDER, "u1", register("u1"))
    context = CommandContext(command_id="update-once")
    outcomes = await asyncio.gather(
        *(
            handler.handle(
                users.DECIDER, "u1", users.UpdateUser(user_id="u1", age=50), context=context
            )
            for _ in range(8)
        )
    )
    assert {o.position for o in outcomes} == {outcomes[0].position}
    assert await count_events(engine) == 3


async def test_concurrent_updates_without_expected_version_all_land(
    handler: CommandHandler,
) -> None:
    await handler.handle(users.DECIDER, "u1", register("u1"))
    outcomes = await asyncio.gather(
        *(
            handler.handle(users.DECIDER, "u1", users.UpdateUser(user_id="u1", age=20 + i))
            for i in range(16)
        )
    )
    assert sorted(o.version for o in outcomes) == list(range(2, 18))
    loaded = await handler.load(users.DECIDER, "u1")
    assert loaded.version == 17


async def test_a_stale_expected_version_is_a_conflict(
    handler: CommandHandler, engine: AsyncEngine
) -> None:
    await handler.handle(users.DECIDER, "u1", register("u1"))
    await handler.handle(users.DECIDER, "u1", users.UpdateUser(user_id="u1", age=40))
    before = await count_events(engine)
    with pytest.raises(WrongExpectedVersion):
        await handler.handle(
            users.DECIDER, "u1", users.UpdateUser(user_id="u1", age=41), expected_version=1
        )
    assert await count_events(engine) == before
    done = await handler.handle(
        users.DECIDER, "u1", users.UpdateUser(user_id="u1", age=41), expected_version=2
    )
    assert done.version == 3


async def test_an_update_that_changes_nothing_writes_nothing(
    handler: CommandHandler, engine: AsyncEngine
) -> None:
    registered = await handler.handle(users.DECIDER, "u1", register("u1"))
    outcome = await handler.handle(users.DECIDER, "u1", users.UpdateUser(user_id="u1", age=36))
    assert outcome.events == ()
    assert (outcome.version, outcome.position) == (
        1,
        max(e.position for e in registered.events if e.stream_id == "u1"),
    )
    assert await count_events(engine) == 2


async def test_domain_refusals_write_nothing(handler: CommandHandler, engine: AsyncEngine) -> None:
    with pytest.raises(NotFound):
        await handler.handle(users.DECIDER, "ghost", users.UpdateUser(user_id="ghost", age=30))
    assert await count_events(engine) == 0


async def test_metadata_carries_the_command_context(handler: CommandHandler) -> None:
    context = CommandContext(
        command_id="c-1", correlation_id="corr", causation_id="cause", actor="me"
    )
    outcome = await handler.handle(users.DECIDER, "u1", register("u1"), context=context)
    assert outcome.events[0].metadata == {
        "commandId": "c-1",
        "correlationId": "corr",
        "causationId": "cause",
        "actor": "me",
    }


# ---------------------------------------------------------------- a counter for long streams


@dataclass(frozen=True, slots=True, kw_only=True)
class Add:
    times: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Added:
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Total:
    value: int = 0


def decide_counter(command: Add, state: Total) -> Sequence[Added]:
    return [Added(amount=1) for _ in range(command.times)]


def evolve_counter(state: Total, event: Added) -> Total:
    match event:
        case Added():
            return Total(value=state.value + event.amount)
        case _:
            assert_never(event)


COUNTER: Decider[Add, Total, Added] = Decider(
    stream_type="Counter",
    state_type=Total,
    initial_state=Total(),
    event_types=(Added,),
    decide=decide_counter,
    evolve=evolve_counter,
)


async def test_loading_a_long_stream_reads_only_events_after_the_snapshot(
    handler: CommandHandler, aggregates: Aggregates
) -> None:
    aggregates.register(COUNTER, snapshot_every=1000)
    for _ in range(100):
        await handler.handle(COUNTER, "counter", Add(times=100))
    for _ in range(7):
        await handler.handle(COUNTER, "counter", Add(times=1))

    loaded = await handler.load(COUNTER, "counter")
    assert loaded.version == 10_007
    assert loaded.snapshot_version == 10_000
    assert loaded.events_read == 7
    assert loaded.state == Total(value=10_007)

    # Time travel to an older version replays from the start and agrees.
    old = await handler.load(COUNTER, "counter", to_version=5_000)
    assert (old.version, old.state, old.snapshot_version) == (5_000, Total(value=5_000), 0)


async def test_without_snapshots_the_whole_stream_is_read(
    handler: CommandHandler, aggregates: Aggregates
) -> None:
    aggregates.register(COUNTER, snapshot_every=None)
    for _ in range(3):
        await handler.handle(COUNTER, "c", Add(times=10))
    loaded = await handler.load(COUNTER, "c")
    assert (loaded.events_read, loaded.state.value) == (30, 30)


async def test_a_decider_never_registered_is_refused_and_writes_nothing(
    handler: CommandHandler, aggregates: Aggregates, engine: AsyncEngine
) -> None:
    with pytest.raises(UnregisteredDecider, match="Counter decider is not registered"):
        await handler.handle(COUNTER, "counter", Add(times=1))
    with pytest.raises(UnregisteredDecider):
        await handler.load(COUNTER, "counter")
    assert await count_events(engine) == 0
    assert aggregates.for_stream_type("Counter") is None


# ---------------------------------------------------------------- upcasting


@dataclass(frozen=True, slots=True, kw_only=True)
class Renamed:
    """Schema 2: version 1 stored the name as `full_name`."""

    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Named:
    name: str = ""


def evolve_named(state: Named, event: Renamed) -> Named:
    return Named(name=event.name)


NAMED: Decider[object, Named, Renamed] = Decider(
    stream_type="Named",
    state_type=Named,
    initial_state=Named(),
    event_types=(Renamed,),
    decide=lambda command, state: [],
    evolve=evolve_named,
    schema_versions={"Renamed": 2},
    upcasters={("Renamed", 1): lambda data: {"name": data["full_name"]}},
)


async def test_an_event_stored_at_schema_1_is_read_as_schema_2(
    handler: CommandHandler, aggregates: Aggregates
) -> None:
    aggregates.register(NAMED)
    await handler.store.append(
        [
            StreamAppend(
                stream_id="n",
                stream_type="Named",
                expected=StreamState.NO_STREAM,
                events=[
                    NewEvent(
                        event_type="Renamed", schema_version=1, data={"full_name": "Ada Lovelace"}
                    )
                ],
            )
        ]
    )
    (stored,) = await handler.store.read_stream("n")
    assert (stored.schema_version, stored.data) == (2, {"name": "Ada Lovelace"})
    assert (await handler.load(NAMED, "n")).state == Named(name="Ada Lovelace")
    assert aggregates.encode(Renamed(name="x")).schema_version == 2


async def test_an_id_of_another_aggregate_is_not_found_and_writes_nothing(
    engine: AsyncEngine,
) -> None:
    """Found by the fuzz test: an order command given a product's id fed the product's events
    to the order's `evolve`, which refused them as unreachable (INTERNAL)."""
    from domain import catalog, orders

    aggregates = Aggregates()
    for decider in (users.DECIDER, catalog.DECIDER, orders.DECIDER):
        aggregates.register(decider, snapshot_every=2)
    store = EventStore(engine, aggregates.upcasters)
    handler = CommandHandler(store, aggregates)
    try:
        await handler.handle(
            catalog.DECIDER,
            "p1",
            catalog.AddProduct(
                product_id="p1", sku="S-1", name="Lamp", price_cents=1, initial_stock=1
            ),
        )
        for quantity in (1, 2):  # past the snapshot interval: a product snapshot exists
            await handler.handle(
                catalog.DECIDER, "p1", catalog.RestockProduct(product_id="p1", quantity=quantity)
            )
        await handler.handle(users.DECIDER, "u1", register("u1"))
        before = await count_events(engine)
        for stream_id in ("p1", "u1"):
            with pytest.raises(NotFound, match="no Order has the id"):
                await handler.handle(
                    orders.DECIDER, stream_id, orders.PlaceOrder(order_id=stream_id)
                )
        assert (await handler.load(users.DECIDER, "p1")).state == users.INITIAL_STATE
        assert await count_events(engine) == before
    finally:
        await store.close()
