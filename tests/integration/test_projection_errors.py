"""What a failed projection shows any client: the event and a short reason, never the SQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain import users
from projections.projector import Envelope, Tables
from projections.runner import ProjectionRunner, ProjectionStatus
from store.command_handler import CommandHandler
from store.event_store import EventStore
from store.serialization import Aggregates

SECRET = "customer-secret-parameter"


class FailingStatement:
    """A projector whose statement fails in the database for the user "bad"."""

    name = "failing-statement"
    tables: tuple[str, ...] = ()
    handles = (users.UserRegistered,)
    event_types = frozenset({"UserRegistered"})

    async def apply(
        self,
        connection: AsyncConnection,
        events: Sequence[Envelope[users.UserRegistered]],
        tables: Tables,
    ) -> None:
        for event in events:
            if event.stream_id == "bad":
                await connection.execute(
                    text("SELECT CAST(:secret AS integer) AS hidden_statement"), {"secret": SECRET}
                )


async def failed(runner: ProjectionRunner) -> ProjectionStatus:
    """The projector's status once it has stopped (the feed may be held back a moment by
    transactions of other databases of the cluster)."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        await runner.run_once()
        (status,) = [s for s in await runner.statuses() if s.name == FailingStatement.name]
        if status.status == "failed" or asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(0.1)


async def test_a_failed_projection_shows_the_position_not_the_statement(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    aggregates = Aggregates()
    aggregates.register(users.DECIDER)
    store = EventStore(engine, aggregates.upcasters)
    runner = ProjectionRunner(engine, store, [FailingStatement()], batch_size=5)
    await runner.ensure_checkpoints()
    handler = CommandHandler(store, aggregates)
    positions = {}
    for user_id in ("good", "bad", "after"):
        outcome = await handler.handle(
            users.DECIDER,
            user_id,
            users.RegisterUser(user_id=user_id, email=f"{user_id}@example.com", name="Ada", age=30),
        )
        positions[user_id] = next(e.position for e in outcome.events if e.stream_id == user_id)
    with caplog.at_level(logging.ERROR, logger="chronicle"):
        status = await failed(runner)
    await store.close()

    assert status.status == "failed"
    assert status.failed_position == positions["bad"]
    error = status.error or ""
    assert f"position {positions['bad']}" in error and "UserRegistered" in error
    assert "DataError" in error
    assert SECRET not in error and "hidden_statement" not in error and "SELECT" not in error
    assert len(error) < 200
    logged = "\n".join(record.getMessage() + str(record.exc_info) for record in caplog.records)
    assert "hidden_statement" in caplog.text or "hidden_statement" in logged
