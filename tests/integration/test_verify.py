"""`chronicle projections verify`: a replay of the log compared with the live read models."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.app import build_aggregates
from domain import posts, users
from projections.posts import PostsProjector
from projections.projector import Envelope, Projector, Tables
from projections.runner import ProjectionRunner
from projections.users import UsersProjector, UserSummaryProjector
from projections.verify import Verification, describe, verify_projection
from store.command_handler import CommandHandler
from store.database import create_engine
from store.event_store import EventStore
from store.events import FeedCheckpoint
from store.serialization import Aggregates
from tests.integration.test_xid_boundaries import World as BoundaryWorld
from tests.integration.test_xid_boundaries import (
    assert_straddles,
    boundary_database,  # noqa: F401  (a fixture)
    write_workload,
)

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class World:
    handler: CommandHandler
    runner: ProjectionRunner
    store: EventStore
    engine: AsyncEngine


@pytest.fixture
async def world(engine: AsyncEngine) -> AsyncIterator[World]:
    aggregates = Aggregates()
    aggregates.register(users.DECIDER)
    aggregates.register(posts.DECIDER)
    store = EventStore(engine, aggregates.upcasters)
    runner = ProjectionRunner(
        engine,
        store,
        [UsersProjector(), UserSummaryProjector(), PostsProjector()],
        batch_size=7,
        poll_interval=0.02,
    )
    await runner.ensure_checkpoints()
    yield World(CommandHandler(store, aggregates), runner, store, engine)
    await store.close()


async def register(world: World, user_id: str, age: int) -> None:
    await world.handler.handle(
        users.DECIDER,
        user_id,
        users.RegisterUser(
            user_id=user_id, email=f"{user_id}@example.com", name=f"User {user_id}", age=age
        ),
    )


async def populate(world: World) -> None:
    for i in range(20):
        await register(world, f"u{i:02}", 13 + i * 4)
    for i in range(0, 20, 3):
        await world.handler.handle(
            users.DECIDER, f"u{i:02}", users.UpdateUser(user_id=f"u{i:02}", age=70)
        )
    for post in ("p1", "p2"):
        await world.handler.handle(
            posts.DECIDER,
            post,
            posts.CreatePost(post_id=post, author_id="u01", author_exists=True, message="hi"),
        )
        for comment in ("c1", "c2", "c3"):
            await world.handler.handle(
                posts.DECIDER,
                post,
                posts.AddComment(
                    post_id=post, comment_id=comment, author_id="u02", author_exists=True, text="!"
                ),
            )
        await world.handler.handle(
            posts.DECIDER, post, posts.LikePost(post_id=post, user_id="u03", user_exists=True)
        )


async def drain(world: World) -> None:
    """Run the runner until every checkpoint reaches the last event (a transaction of another
    database of the cluster may hold the feed back for a while)."""
    async with world.engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT transaction_id::text AS tx, position FROM events "
                    "ORDER BY transaction_id DESC, position DESC LIMIT 1"
                )
            )
        ).one()
    last = FeedCheckpoint(int(row.tx), row.position)
    for _ in range(1500):
        await world.runner.run_once()
        places = [await live_checkpoint(world.engine, name) for name in world.runner.projectors]
        if min(places) >= last:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("the read models did not catch up")


async def verify(world: World, name: str, projector: Projector | None = None) -> Verification:
    return await verify_projection(
        world.engine, world.store, projector or world.runner.projector(name), batch_size=5
    )


async def live_checkpoint(engine: AsyncEngine, name: str) -> FeedCheckpoint:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT transaction_id::text AS tx, position FROM projection_checkpoints "
                    "WHERE name = :name"
                ),
                {"name": name},
            )
        ).one()
    return FeedCheckpoint(int(row.tx), row.position)


async def scratch_tables(engine: AsyncEngine) -> list[tuple[str, str]]:
    """Every relation (table or index) of a verify, and whether it is temporary (`t`)."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT relname, relpersistence::text AS persistence FROM pg_class "
                "WHERE relname LIKE '%\\_\\_verify%' AND relkind = 'r'"
            )
        )
        return [(row.relname, row.persistence) for row in rows]


async def execute(engine: AsyncEngine, *statements: str) -> None:
    async with engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))


async def test_a_clean_read_model_verifies_at_its_live_checkpoint(world: World) -> None:
    await populate(world)
    await drain(world)
    await register(world, "late", 40)  # in the log, not yet in the read models
    for name, rows in (("users", 20), ("user_summary", 21), ("posts", 8)):
        verification = await verify(world, name)
        assert verification.ok, verification.drift
        assert verification.rows == rows
        assert verification.checkpoint == await live_checkpoint(world.engine, name)
        assert verification.status == "running"
    assert await scratch_tables(world.engine) == []


async def test_drift_is_reported_by_key(world: World) -> None:
    await populate(world)
    await drain(world)
    await execute(
        world.engine,
        "DELETE FROM users_view WHERE id = 'u03'",
        "UPDATE users_view SET name = 'Mallory' WHERE id = 'u05'",
        "INSERT INTO users_view (id, email, name, age, age_group, version, created_at, "
        "updated_at) VALUES ('u99', 'x@example.com', 'X', 30, 'ADULT', 1, now(), now())",
        "DELETE FROM post_comments_view WHERE post_id = 'p2' AND comment_id = 'c2'",
        "UPDATE posts_view SET liked_by = '{}' WHERE id = 'p1'",
    )
    found = await verify(world, "users")
    assert not found.ok
    [drift] = found.drift
    assert (drift.table, drift.count) == ("users_view", 3)
    assert (drift.missing, drift.extra, drift.changed) == (("u03",), ("u99",), ("u05",))
    found = await verify(world, "posts")
    assert [(d.table, d.missing, d.extra, d.changed) for d in found.drift] == [
        ("posts_view", (), (), ("p1",)),
        ("post_comments_view", ("p2/c2",), (), ()),
    ]
    assert (await verify(world, "user_summary")).ok, "another read model of the same events"
    assert await scratch_tables(world.engine) == []


async def test_a_large_drift_shows_some_keys_of_every_kind(world: World) -> None:
    await populate(world)
    await drain(world)
    await execute(
        world.engine,
        "UPDATE users_view SET age = 12 WHERE id = 'u19'",
        "INSERT INTO users_view SELECT 'u99', email, name, age, age_group, version, created_at, "
        "updated_at FROM users_view WHERE id = 'u19'",
        "DELETE FROM users_view WHERE id < 'u19'",
    )
    found = await verify(world, "users")
    [drift] = found.drift
    assert (drift.count, dict(drift.counts)) == (21, {"missing": 19, "extra": 1, "changed": 1})
    assert drift.missing == tuple(f"u{i:02}" for i in range(18))
    assert (drift.extra, drift.changed) == (("u99",), ("u19",))
    position = found.checkpoint.position
    assert describe(found) == (
        f"users: DRIFT: 21 rows differ in users_view at position {position}: missing "
        + ", ".join(f"u{i:02}" for i in range(18))
        + " and 1 more; extra u99; changed u19"
    )


async def test_a_failed_read_model_is_verified_where_it_stopped(world: World) -> None:
    await populate(world)
    await drain(world)
    await execute(world.engine, "UPDATE projection_checkpoints SET status = 'failed'")
    await register(world, "after", 50)
    await world.runner.run_once()
    verification = await verify(world, "users")
    assert verification.ok and verification.status == "failed"
    assert verification.rows == 20


async def test_verify_while_writers_append_compares_at_one_position(world: World) -> None:
    await populate(world)
    await drain(world)
    stop = asyncio.Event()
    running = asyncio.create_task(world.runner.run(stop))

    async def write(writer: int) -> None:
        i = 0
        while not stop.is_set():
            user_id = f"w{writer}-{i:04}"
            await register(world, user_id, 13 + i % 100)
            if i % 3 == 0:
                await world.handler.handle(
                    users.DECIDER, user_id, users.UpdateUser(user_id=user_id, age=99)
                )
            i += 1

    writers = [asyncio.create_task(write(writer)) for writer in range(3)]
    try:
        verifications = [
            await verify(world, name) for _ in range(3) for name in ("users", "user_summary")
        ]
    finally:
        stop.set()
        await asyncio.gather(running, *writers)
    assert all(v.ok for v in verifications), [v.drift for v in verifications]
    positions = [v.checkpoint.position for v in verifications]
    assert positions[-1] > positions[0], "the runner moved on while verifying"
    assert await scratch_tables(world.engine) == []


class Stalling:
    """Users' projector that fails, or waits until cancelled, at its second batch."""

    name = "users"
    tables: tuple[str, ...] = ("users_view",)
    handles = UsersProjector.handles
    event_types = UsersProjector.event_types

    def __init__(self, *, fail: bool) -> None:
        self.fail = fail
        self.batches = 0
        self.stalled = asyncio.Event()

    async def apply(
        self, connection: AsyncConnection, events: Sequence[Envelope[users.Event]], tables: Tables
    ) -> None:
        self.batches += 1
        if self.batches == 2:
            if self.fail:
                raise RuntimeError("cannot replay this")
            self.stalled.set()
            await asyncio.Event().wait()
        await UsersProjector().apply(connection, events, tables)


async def test_scratch_tables_are_dropped_on_failure_and_cancellation(world: World) -> None:
    await populate(world)
    await drain(world)
    with pytest.raises(RuntimeError, match="cannot replay"):
        await verify(world, "users", Stalling(fail=True))
    assert await scratch_tables(world.engine) == []

    stalling = Stalling(fail=False)
    verifying = asyncio.create_task(verify(world, "users", stalling))
    await asyncio.wait_for(stalling.stalled.wait(), 5)
    assert await scratch_tables(world.engine) == [("users_view__verify", "t")]
    verifying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await verifying
    assert await scratch_tables(world.engine) == []


async def chronicle(database_url: str, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api.cli",
        "projections",
        "verify",
        *args,
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "warning"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


async def test_the_command_exits_non_zero_on_drift(world: World, database_url: str) -> None:
    await populate(world)
    await drain(world)
    code, output = await chronicle(database_url)
    assert code == 0, output
    for name in ("users", "user_summary", "products", "orders", "posts"):
        assert f"{name}: OK" in output
    assert "fulfilment" not in output

    await execute(world.engine, "DELETE FROM users_view WHERE id = 'u07'")
    every, users_only, posts_only, unknown, process = await asyncio.gather(
        chronicle(database_url),
        chronicle(database_url, "users"),
        chronicle(database_url, "posts"),
        chronicle(database_url, "nope"),
        chronicle(database_url, "fulfilment"),
    )
    assert every[0] == 1 and "users: DRIFT: 1 row differs in users_view" in every[1]
    assert "missing u07" in every[1] and "posts: OK (8 rows" in every[1]
    assert users_only[0] == 1 and "missing u07" in users_only[1]
    assert posts_only[0] == 0, posts_only[1]
    assert unknown[0] == 2 and "no read model" in unknown[1]
    assert process[0] == 2 and "process manager" in process[1]
    assert await scratch_tables(world.engine) == []


@pytest.fixture
async def boundary_world(
    boundary_database: tuple[int, str],  # noqa: F811  (the fixture imported above)
) -> AsyncIterator[BoundaryWorld]:
    """A log written across a change of digits or the 32-bit wraparound of the transaction ids
    (tests/xid_cluster.py)."""
    boundary, url = boundary_database
    engine = create_engine(url, pool_size=10)
    aggregates = build_aggregates()
    store = EventStore(engine, aggregates.upcasters)
    yield BoundaryWorld(boundary, engine, store, CommandHandler(store, aggregates))
    await store.close()
    await engine.dispose()


async def test_verify_stops_at_the_live_checkpoint_across_a_boundary(
    boundary_world: BoundaryWorld,
) -> None:
    world = boundary_world
    await write_workload(world)
    await assert_straddles(world)
    runner = world.runner(7)
    await runner.ensure_checkpoints()
    verified: set[int] = set()
    while await runner.run_once():  # the live read models stand somewhere new at every pass
        for name in ("users", "orders"):
            verification = await verify_projection(
                world.engine, world.store, runner.projector(name), batch_size=5
            )
            assert verification.ok, (name, verification.checkpoint, verification.drift)
            verified.add(verification.checkpoint.transaction_id)
    assert min(verified) < world.boundary <= max(verified), "checkpoints on both sides"
