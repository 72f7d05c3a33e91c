"""A commandId stands for one command: a retry of that command replays its first result, any
other command under the same id is refused as DUPLICATE and learns nothing of the first."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain import catalog, users
from domain.errors import Duplicate
from store.command_handler import CommandContext, CommandHandler, CommandOutcome
from store.errors import CommandAlreadyProcessed, CommandIdReused, WrongExpectedVersion
from store.event_store import EventStore
from store.events import (
    AppendResult,
    CommandIdentity,
    NewEvent,
    StreamAppend,
    StreamState,
    fingerprint,
)
from store.migrations import downgrade, upgrade
from store.serialization import Aggregates


@pytest.fixture
def aggregates() -> Aggregates:
    aggregates = Aggregates()
    aggregates.register(users.DECIDER)
    aggregates.register(catalog.DECIDER)
    return aggregates


@pytest.fixture
async def handler(engine: AsyncEngine, aggregates: Aggregates) -> AsyncIterator[CommandHandler]:
    store = EventStore(engine, aggregates.upcasters)
    yield CommandHandler(store, aggregates)
    await store.close()


async def count_events(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT count(*) FROM events"))).scalar_one())


def register(user_id: str, email: str = "ada@example.com") -> users.RegisterUser:
    return users.RegisterUser(user_id=user_id, email=email, name="Ada", age=36)


def add_product(product_id: str) -> catalog.AddProduct:
    return catalog.AddProduct(product_id=product_id, sku="LAMP-1", name="Lamp", price_cents=900)


def assert_tells_nothing_of(refusal: Exception, first: CommandOutcome) -> None:
    message = str(refusal)
    assert "ada" not in message.lower()
    for event in first.events:
        assert event.stream_id not in message


async def test_another_command_type_under_a_used_id_is_refused_and_writes_nothing(
    handler: CommandHandler, engine: AsyncEngine
) -> None:
    context = CommandContext(command_id="X")
    first = await handler.handle(users.DECIDER, "u1", register("u1"), context=context)
    before = await count_events(engine)
    with pytest.raises(CommandIdReused) as refused:
        await handler.handle(catalog.DECIDER, "p1", add_product("p1"), context=context)
    assert isinstance(refused.value, Duplicate)  # DUPLICATE for the API
    # Its sender is told which of its own commands holds the id; anyone else learns nothing.
    assert "commandId 'X' was already used for your RegisterUser command on u1" in str(
        refused.value
    )
    stranger = CommandContext(command_id="X", actor="mallory")
    with pytest.raises(CommandIdReused) as told_nothing:
        await handler.handle(catalog.DECIDER, "p1", add_product("p1"), context=stranger)
    assert "commandId 'X' was already used for a different command" in str(told_nothing.value)
    assert_tells_nothing_of(told_nothing.value, first)
    assert await count_events(engine) == before
    assert await handler.store.stream_version("p1") is None


async def test_the_same_type_and_target_with_another_input_is_refused(
    handler: CommandHandler, engine: AsyncEngine
) -> None:
    await handler.handle(users.DECIDER, "u1", register("u1"))
    context = CommandContext(command_id="update")
    await handler.handle(
        users.DECIDER, "u1", users.UpdateUser(user_id="u1", age=50), context=context
    )
    before = await count_events(engine)
    with pytest.raises(CommandIdReused):
        await handler.handle(
            users.DECIDER, "u1", users.UpdateUser(user_id="u1", age=51), context=context
        )
    with pytest.raises(CommandIdReused):  # the same input on another target
        await handler.handle(
            users.DECIDER, "u2", register("u2", email="bob@example.com"), context=context
        )
    assert await count_events(engine) == before
    assert (await handler.load(users.DECIDER, "u1")).state.age == 50


async def test_the_same_command_again_replays_its_first_result(handler: CommandHandler) -> None:
    context = CommandContext(command_id="X")
    first = await handler.handle(users.DECIDER, "u1", register("u1"), context=context)
    again = await handler.handle(users.DECIDER, "u1", register("u1"), context=context)
    assert again.replayed
    assert (again.stream_id, again.version, again.position) == (
        first.stream_id,
        first.version,
        first.position,
    )
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]


async def test_a_client_fingerprint_replaces_the_commands_own(handler: CommandHandler) -> None:
    """Values the server fills in (a price looked up) may differ between two sends of one
    request: with the client's input fingerprinted, the retry still replays."""
    request = {"sku": "LAMP-1", "name": "Lamp", "priceCents": 900}
    context = CommandContext(command_id="X", fingerprint=fingerprint(request))
    first = await handler.handle(catalog.DECIDER, "p1", add_product("p1"), context=context)
    served_otherwise = catalog.AddProduct(product_id="p1", sku="LAMP-1", name="Lamp", price_cents=1)
    again = await handler.handle(catalog.DECIDER, "p1", served_otherwise, context=context)
    assert again.replayed and again.position == first.position
    other = CommandContext(command_id="X", fingerprint=fingerprint({**request, "name": "Desk"}))
    with pytest.raises(CommandIdReused):
        await handler.handle(catalog.DECIDER, "p1", add_product("p1"), context=other)


def test_the_fingerprint_is_canonical() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1, "b": None}) == fingerprint({"a": 1})
    assert fingerprint({"a": 1, "commandId": "X"}, omit=("commandId",)) == fingerprint({"a": 1})
    assert fingerprint(register("u1")) != fingerprint(register("u1", email="bob@example.com"))


async def test_the_store_compares_the_identity_of_a_command_recorded_meanwhile(
    store: EventStore,
) -> None:
    """The path of a lost race: the id is taken between the check and the append."""
    identity = CommandIdentity(command_type="Open", target="s", fingerprint="f1")

    def opening(stream_id: str) -> list[StreamAppend]:
        event = NewEvent(event_type="Opened", data={})
        return [
            StreamAppend(
                stream_id=stream_id, stream_type="S", expected=StreamState.ANY, events=[event]
            )
        ]

    first = await store.append(opening("s"), command_id="c", identity=identity)
    with pytest.raises(CommandAlreadyProcessed) as same:
        await store.append(opening("s"), command_id="c", identity=identity)
    assert same.value.prior is not None
    assert [e.position for e in same.value.prior.events] == [first.position]
    other = CommandIdentity(command_type="Open", target="s", fingerprint="f2")
    with pytest.raises(CommandIdReused):
        await store.append(opening("s"), command_id="c", identity=other)
    assert len(await store.read_stream("s")) == 1


async def test_a_command_recorded_before_fingerprints_must_still_match_its_target(
    handler: CommandHandler, engine: AsyncEngine
) -> None:
    context = CommandContext(command_id="old")
    first = await handler.handle(users.DECIDER, "u1", register("u1"), context=context)
    async with engine.begin() as connection:  # as migration 0006 finds a row of before
        await connection.execute(
            text("UPDATE commands SET command_type = NULL, fingerprint = NULL")
        )
    again = await handler.handle(
        users.DECIDER, "u1", register("u1", email="bob@example.com"), context=context
    )
    assert again.replayed and again.position == first.position
    with pytest.raises(CommandIdReused):
        await handler.handle(catalog.DECIDER, "p1", add_product("p1"), context=context)


def send(
    handler: CommandHandler, user: str, kind: str, nth: int, context: CommandContext
) -> asyncio.Future[CommandOutcome]:
    """One send under the race's command id: the same command, or a different one."""
    if kind == "same":
        call = handler.handle(
            users.DECIDER, user, users.UpdateUser(user_id=user, age=50), context=context
        )
    elif kind == "input":
        call = handler.handle(
            users.DECIDER, user, users.UpdateUser(user_id=user, age=60 + nth), context=context
        )
    elif kind == "target":
        other = f"{user}-other"
        call = handler.handle(
            users.DECIDER, other, register(other, f"{other}-{nth}@example.com"), context=context
        )
    else:
        product = f"{user}-p{nth}"
        command = catalog.AddProduct(product_id=product, sku=product, name="Lamp", price_cents=9)
        call = handler.handle(catalog.DECIDER, product, command, context=context)
    return asyncio.ensure_future(call)


async def test_racing_sends_of_one_id_write_once_and_only_the_same_command_replays(
    handler: CommandHandler, engine: AsyncEngine
) -> None:
    """Sends of the same command and of different ones (same target with another input, another
    target, another type) race under one id: exactly one writes, the same command's other
    sends get its result, every different command is refused. Seeded, so a failure replays."""
    refusals: set[type[Exception]] = set()
    append = handler.store.append

    async def watched_append(*args: Any, **kwargs: Any) -> AppendResult:
        try:
            return await append(*args, **kwargs)
        except Exception as error:
            refusals.add(type(error))
            raise

    handler.store.append = watched_append  # type: ignore[method-assign]
    rng = random.Random(20261204)
    for round_ in range(24):
        user = f"u{round_}"
        await handler.handle(users.DECIDER, user, register(user, f"{user}@example.com"))
        context = CommandContext(command_id=f"race-{round_}")
        extra = rng.choices(["same", "input", "target", "type"], k=rng.randint(0, 6))
        kinds = ["same", "same", "input", "target", "type", *extra]
        rng.shuffle(kinds)
        results = await asyncio.gather(
            *(send(handler, user, kind, nth, context) for nth, kind in enumerate(kinds)),
            return_exceptions=True,
        )
        written = [r for r in results if isinstance(r, CommandOutcome) and not r.replayed]
        assert len(written) == 1, results
        winner = kinds[results.index(written[0])]
        for kind, result in zip(kinds, results, strict=True):
            if result is written[0] or kind == winner == "same":
                assert isinstance(result, CommandOutcome), (kind, winner, result)
                assert result.position == written[0].position
            else:
                assert isinstance(result, CommandIdReused), (kind, winner, result)
        async with engine.connect() as connection:
            count = (
                await connection.execute(
                    text("SELECT count(*) FROM events WHERE metadata->>'commandId' = :c"),
                    {"c": context.command_id},
                )
            ).scalar_one()
        assert count == len(written[0].events)
    # Both ways a lost race surfaces were taken: the id recorded meanwhile (commands_pkey) and
    # the stream moved meanwhile.
    assert {CommandIdReused, WrongExpectedVersion} <= refusals, refusals


async def test_migration_0006_downgrades_to_the_first_append_and_back(
    engine: AsyncEngine, database_url: str
) -> None:
    async def signatures() -> list[str]:
        connection = await asyncpg.connect(database_url)
        try:
            rows = await connection.fetch(
                "SELECT pg_get_function_identity_arguments(oid) AS a FROM pg_proc "
                "WHERE proname = 'append_to_streams'"
            )
            return [row["a"] for row in rows]
        finally:
            await connection.close()

    [new] = await signatures()
    assert new.endswith("p_command_id text, p_command_type text, p_fingerprint text")
    await downgrade(engine, "0005")
    [old] = await signatures()
    assert old.endswith("p_metadata jsonb, p_command_id text")
    store = EventStore(engine)
    try:
        event = NewEvent(event_type="Opened", data={})
        append = StreamAppend(
            stream_id="s", stream_type="S", expected=StreamState.ANY, events=[event]
        )
        async with engine.begin() as connection:
            columns = (
                await connection.execute(
                    text(
                        "SELECT count(*) FROM information_schema.columns "
                        "WHERE table_name = 'commands' AND column_name = 'fingerprint'"
                    )
                )
            ).scalar_one()
        assert columns == 0
        await upgrade(engine)
        assert len(await signatures()) == 1
        await store.append([append], command_id="c")
        prior = await store.processed_command("c")
        assert prior is not None and prior.fingerprint is None and prior.command_type is None
    finally:
        await store.close()
