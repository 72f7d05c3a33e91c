"""Runner processes: a kill -9 mid catch-up loses or repeats nothing; one leader at a time."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain import users
from projections.runner import ProjectionRunner
from projections.users import UsersProjector, UserSummaryProjector
from store.command_handler import CommandHandler
from store.event_store import EventStore
from store.events import NewEvent, StreamAppend, StreamState
from store.serialization import Aggregates


class RunnerProcess:
    def __init__(self, database_url: str, log: Path, batch_size: int = 500) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "info",
            "CHRONICLE_PROJECTION_BATCH_SIZE": str(batch_size),
        }
        self.log = log
        with log.open("wb") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "projections", "run"],
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def leads(self) -> bool:
        return "this process runs the projections" in self.output()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.wait(20)


@pytest.fixture
def processes() -> Iterator[list[RunnerProcess]]:
    started: list[RunnerProcess] = []
    yield started
    for process in started:
        process.kill()


async def seed_users(store: EventStore, count: int) -> None:
    """Registrations written straight to the store, 16 at a time, to make a long catch-up."""

    async def write(start: int) -> None:
        for i in range(start, count, 16):
            await store.append(
                [
                    StreamAppend(
                        stream_id=f"user-{i:05}",
                        stream_type="User",
                        expected=StreamState.NO_STREAM,
                        events=[
                            NewEvent(
                                event_type="UserRegistered",
                                data={
                                    "user_id": f"user-{i:05}",
                                    "email": f"u{i}@example.com",
                                    "name": f"User {i}",
                                    "age": 13 + i % 100,
                                },
                            )
                        ],
                    )
                ]
            )

    await asyncio.gather(*(write(s) for s in range(16)))


async def checkpoint(engine: AsyncEngine, name: str) -> int:
    async with engine.connect() as connection:
        return int(
            (
                await connection.execute(
                    text("SELECT position FROM projection_checkpoints WHERE name = :n"), {"n": name}
                )
            ).scalar()
            or 0
        )


async def head(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(
            (await connection.execute(text("SELECT max(position) FROM events"))).scalar_one()
        )


async def until(condition: Callable[[], Awaitable[bool]], within: float = 60) -> None:
    """Poll another process's progress (through the database) until `condition()` holds:
    there is no in-process event to await for what another process does."""
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def rows(engine: AsyncEngine, table: str) -> list[tuple[object, ...]]:
    async with engine.connect() as connection:
        return [
            tuple(r) for r in await connection.execute(text(f"SELECT * FROM {table} ORDER BY 1"))
        ]


def local_runner(engine: AsyncEngine, store: EventStore) -> ProjectionRunner:
    return ProjectionRunner(engine, store, [UsersProjector(), UserSummaryProjector()])


async def test_a_runner_killed_mid_catch_up_resumes_without_loss_or_repeat(
    store: EventStore,
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
    processes: list[RunnerProcess],
) -> None:
    await seed_users(store, 3000)
    last = await head(engine)
    first = RunnerProcess(database_url, tmp_path / "first.log", batch_size=25)
    processes.append(first)

    async def midway() -> bool:
        return await checkpoint(engine, "users") > last // 4

    await until(midway)
    first.kill(signal.SIGKILL)
    stopped_at = await checkpoint(engine, "users")
    assert 0 < stopped_at < last, "the kill should land in the middle of the catch-up"

    second = RunnerProcess(database_url, tmp_path / "second.log", batch_size=25)
    processes.append(second)

    async def caught_up() -> bool:
        return all([await checkpoint(engine, n) == last for n in ("users", "user_summary")])

    await until(caught_up)
    second.kill(signal.SIGTERM)

    after_crash = {
        t: await rows(engine, t) for t in ("users_view", "user_summary", "user_summary_ages")
    }
    assert len(after_crash["users_view"]) == 3000
    runner = local_runner(engine, store)
    await runner.drive_rebuild("users", lambda *_: None)
    await runner.drive_rebuild("user_summary", lambda *_: None)
    for table, before in after_crash.items():
        assert await rows(engine, table) == before, f"{table} differs from a full replay"
    summary = after_crash["user_summary"][0]
    assert summary[1] == 3000  # total users: each registration counted once


async def test_of_two_runner_processes_one_works_and_the_other_takes_over(
    store: EventStore,
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
    processes: list[RunnerProcess],
) -> None:
    aggregates = Aggregates()
    aggregates.register(users.DECIDER)
    handler = CommandHandler(store, aggregates)
    a = RunnerProcess(database_url, tmp_path / "a.log")
    b = RunnerProcess(database_url, tmp_path / "b.log")
    processes.extend([a, b])

    async def someone_leads() -> bool:
        return a.leads or b.leads

    await until(someone_leads)
    outcome = await handler.handle(
        users.DECIDER,
        "one",
        users.RegisterUser(user_id="one", email="one@example.com", name="One", age=30),
    )
    await local_runner(engine, store).wait_for("users", outcome.position, within=10)
    leader, standby = (a, b) if a.leads else (b, a)
    assert not standby.leads, "only one runner may hold the lock"
    async with engine.connect() as connection:
        holders = (
            await connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 7463002 "
                    "AND granted AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())"
                )
            )
        ).scalar_one()
    assert holders == 1

    leader.kill(signal.SIGKILL)
    outcome = await handler.handle(
        users.DECIDER,
        "two",
        users.RegisterUser(user_id="two", email="two@example.com", name="Two", age=40),
    )
    await local_runner(engine, store).wait_for("users", outcome.position, within=20)
    assert standby.leads
    assert [r[0] for r in await rows(engine, "users_view")] == ["one", "two"]
