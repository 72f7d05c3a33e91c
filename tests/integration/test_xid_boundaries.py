"""Every reader of the log across the places where transaction ids are easy to mishandle.

Each test runs on a private cluster whose next transaction id sits just below 1,000,000 (the ids
gain a digit: a text sort puts "1000000" before "999999") or just below the 32-bit wraparound
(epoch 0 -> 1). A seeded workload of every aggregate is written across the boundary while the
runner is behind; then the readers catch up, and what they built is checked against the truth:
each stream's own events, read by version, folded by the domain's deciders.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import all_projectors, build_aggregates
from domain import catalog, orders, posts, users
from projections.fulfilment import FulfilmentProcess
from projections.runner import ProjectionRunner, StaleRead
from store.command_handler import CommandHandler
from store.database import create_engine
from store.event_store import EventStore
from store.events import FEED_START, FeedCheckpoint, RecordedEvent
from tests.xid_cluster import DIGITS_BOUNDARY, WRAPAROUND, XidClusters

BOUNDARIES = [
    pytest.param(DIGITS_BOUNDARY, id="999999-to-1000000"),
    pytest.param(WRAPAROUND, id="wraparound-into-epoch-1"),
]
LEAD = 60
"""How many transaction ids before the boundary each cluster starts: the workload writes about
twice as many, and every test checks that its events lie on both sides."""

ADDRESS = orders.Address(line1="1 Main St", city="Springfield", postal_code="12345", country="US")


@dataclass
class World:
    boundary: int
    engine: AsyncEngine
    store: EventStore
    handler: CommandHandler

    def runner(self, batch_size: int) -> ProjectionRunner:
        return ProjectionRunner(
            self.engine,
            self.store,
            all_projectors(),
            process_managers=[FulfilmentProcess(self.engine, self.handler)],
            batch_size=batch_size,
        )


@pytest.fixture(params=BOUNDARIES)
def boundary_database(
    request: pytest.FixtureRequest, xid_clusters: XidClusters
) -> Iterator[tuple[int, str]]:
    boundary: int = request.param
    with xid_clusters.start(boundary - LEAD) as url:
        yield boundary, url


@pytest.fixture
async def world(boundary_database: tuple[int, str]) -> AsyncIterator[World]:
    boundary, url = boundary_database
    engine = create_engine(url, pool_size=10)
    aggregates = build_aggregates()
    store = EventStore(engine, aggregates.upcasters)
    yield World(boundary, engine, store, CommandHandler(store, aggregates))
    await store.close()
    await engine.dispose()


async def write_workload(world: World, seed: int = 7) -> None:
    """Users, products, orders (placed for the fulfilment process), posts: about 2 x LEAD
    transactions in a seeded order, some of them concurrent."""
    rng = random.Random(seed)
    handler = world.handler
    user_ids = [f"u-{n}" for n in range(12)]
    product_ids = [f"p-{n}" for n in range(4)]
    for n, user_id in enumerate(user_ids):
        await handler.handle(
            users.DECIDER,
            user_id,
            users.RegisterUser(
                user_id=user_id, email=f"{user_id}@example.com", name=f"User {n}", age=13 + 11 * n
            ),
        )
    for n, product_id in enumerate(product_ids):
        await handler.handle(
            catalog.DECIDER,
            product_id,
            catalog.AddProduct(
                product_id=product_id,
                sku=f"SKU-{n}",
                name=f"Product {n}",
                price_cents=100 * (n + 1),
                initial_stock=rng.randint(2, 6),
            ),
        )

    async def an_order(n: int) -> None:
        order_id = f"o-{n}"
        await handler.handle(
            orders.DECIDER,
            order_id,
            orders.CreateOrder(
                order_id=order_id,
                customer_id=rng.choice(user_ids),
                customer_exists=True,
                shipping_address=ADDRESS,
            ),
        )
        for product_id in rng.sample(product_ids, rng.randint(1, 2)):
            index = product_ids.index(product_id)
            entry = orders.CatalogEntry(
                sku=f"SKU-{index}", name=f"Product {index}", unit_price_cents=100 * (index + 1)
            )
            await handler.handle(
                orders.DECIDER,
                order_id,
                orders.AddLineItem(
                    order_id=order_id,
                    product_id=product_id,
                    quantity=rng.randint(1, 3),
                    product=entry,
                ),
            )
        await handler.handle(orders.DECIDER, order_id, orders.PlaceOrder(order_id=order_id))

    async def a_post(n: int) -> None:
        post_id = f"post-{n}"
        await handler.handle(
            posts.DECIDER,
            post_id,
            posts.CreatePost(
                post_id=post_id, author_id=user_ids[n], author_exists=True, message=f"Hello {n}"
            ),
        )
        for liker in rng.sample(user_ids, 3):
            await handler.handle(
                posts.DECIDER,
                post_id,
                posts.LikePost(post_id=post_id, user_id=liker, user_exists=True),
            )
        await handler.handle(
            posts.DECIDER,
            post_id,
            posts.AddComment(
                post_id=post_id,
                comment_id=f"c-{n}",
                author_id=rng.choice(user_ids),
                author_exists=True,
                text="Nice",
            ),
        )

    # Concurrent writers: positions and transaction ids interleave across streams.
    await asyncio.gather(*(an_order(n) for n in range(8)), *(a_post(n) for n in range(4)))
    for user_id in rng.sample(user_ids, 6):
        await handler.handle(
            users.DECIDER, user_id, users.UpdateUser(user_id=user_id, age=rng.randint(13, 150))
        )


async def log_in_commit_order(engine: AsyncEngine) -> list[tuple[int, int, str, int]]:
    """(transaction id, position, stream, version) of every event, sorted here as numbers."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT transaction_id::text AS tx, position, stream_id, version FROM events")
        )
        return sorted((int(r.tx), r.position, r.stream_id, r.version) for r in rows)


async def assert_straddles(world: World) -> list[tuple[int, int, str, int]]:
    log = await log_in_commit_order(world.engine)
    ids = [tx for tx, *_ in log]
    assert min(ids) < world.boundary <= max(ids), (min(ids), world.boundary, max(ids))
    return log


async def drain(runner: ProjectionRunner, world: World) -> None:
    """Run passes until every checkpoint is at the end of the log and the log stays there (the
    fulfilment process lengthens it)."""
    async with asyncio.timeout(60):
        while True:
            while await runner.run_once():
                pass
            log = await log_in_commit_order(world.engine)
            statuses = await runner.statuses()
            if all(s.lag == 0 for s in statuses) and log == await log_in_commit_order(world.engine):
                return


async def assert_read_models_are_the_truth(world: World) -> None:
    """Every read model row against its aggregate, loaded stream by stream by version."""
    handler = world.handler
    async with world.engine.connect() as connection:
        streams = {
            r.stream_id: (r.stream_type, r.version)
            for r in await connection.execute(
                text("SELECT stream_id, stream_type, version FROM streams")
            )
        }

        async def rows(sql: str) -> dict[str, tuple[object, ...]]:
            return {r[0]: tuple(r[1:]) for r in await connection.execute(text(sql))}

        views = {
            "User": await rows("SELECT id, version, age, name FROM users_view"),
            "Product": await rows("SELECT id, version, on_hand, reserved FROM products_view"),
            "Order": await rows("SELECT id, version, status, total_cents FROM orders_view"),
            "Post": await rows(
                "SELECT id, version, cardinality(liked_by), "
                "(SELECT count(*) FROM post_comments_view c WHERE c.post_id = p.id) "
                "FROM posts_view p"
            ),
        }
        summary = (
            await connection.execute(
                text("SELECT total_users, age_sum, teen, adult, senior FROM user_summary")
            )
        ).one()
    for stream_type, view in views.items():
        expected_ids = {s for s, (t, _) in streams.items() if t == stream_type}
        assert set(view) == expected_ids, stream_type
    ages = []
    for user_id, (version, age, name) in views["User"].items():
        state = (await handler.load(users.DECIDER, user_id)).state
        assert (version, age, name) == (streams[user_id][1], state.age, state.name), user_id
        ages.append(state.age)
    assert tuple(summary) == (
        len(ages),
        sum(ages),
        sum(13 <= a <= 19 for a in ages),
        sum(20 <= a <= 64 for a in ages),
        sum(a >= 65 for a in ages),
    )
    for product_id, (version, on_hand, reserved) in views["Product"].items():
        product = (await handler.load(catalog.DECIDER, product_id)).state
        held = sum(r.quantity for r in product.reservations)
        assert (version, on_hand, reserved) == (streams[product_id][1], product.on_hand, held)
    for order_id, (version, status, total) in views["Order"].items():
        order = (await handler.load(orders.DECIDER, order_id)).state
        assert order.status in {orders.CONFIRMED, orders.REJECTED}, (order_id, order.status)
        expected_total = sum(line.quantity * line.unit_price_cents for line in order.lines)
        assert (version, status, total) == (streams[order_id][1], order.status, expected_total)
    for post_id, (version, likes, comments) in views["Post"].items():
        post = (await handler.load(posts.DECIDER, post_id)).state
        assert (version, likes, comments) == (
            streams[post_id][1],
            len(post.liked_by),
            len(post.comments),
        )


@pytest.mark.parametrize("batch_size", [1, 7, 500])
async def test_every_read_model_and_the_fulfilment_process_read_across(
    world: World, batch_size: int
) -> None:
    await write_workload(world)
    log = await assert_straddles(world)
    runner = world.runner(batch_size)
    await runner.ensure_checkpoints()
    before = {s.name: s.lag for s in await runner.statuses()}
    assert before == {name: len(log) for name in before}, "lag is the count of unread events"
    last = log[-1][1]
    with pytest.raises(StaleRead):
        await runner.wait_for("users", last, within=0)

    await drain(runner, world)

    await assert_read_models_are_the_truth(world)
    final = await log_in_commit_order(world.engine)
    head = FeedCheckpoint(final[-1][0], final[-1][1])
    for status in await runner.statuses():
        assert (status.status, status.lag, status.position) == ("running", 0, head.position)
    for _, position, *_ in final:  # minPosition: every event counts as applied
        await runner.wait_for("orders", position, within=0)


async def test_a_blue_green_rebuild_reads_across(world: World) -> None:
    runner = world.runner(7)
    await runner.ensure_checkpoints()
    await write_workload(world)
    await assert_straddles(world)
    await drain(runner, world)
    for name in ("users", "user_summary", "products", "orders", "posts"):
        assert await runner.rebuild(name)
    await drain(runner, world)
    statuses = {s.name: s.status for s in await runner.statuses(include_rebuilds=True)}
    assert not any(name.endswith(":rebuild") for name in statuses), statuses
    await assert_read_models_are_the_truth(world)


async def test_the_feed_pages_in_commit_order_with_every_filter(world: World) -> None:
    await write_workload(world)
    log = await assert_straddles(world)
    rng = random.Random(11)

    async def read_all(**filters: object) -> list[RecordedEvent]:
        read: list[RecordedEvent] = []
        place = FEED_START
        while batch := await world.store.read_feed(
            place, limit=rng.choice([1, 2, 7, 50]), **filters
        ):  # type: ignore[arg-type]
            read.extend(batch)
            place = batch[-1].checkpoint
        return read

    def expected(keep: object) -> list[tuple[int, int]]:
        return [(tx, position) for tx, position, stream, _ in log if keep(stream)]  # type: ignore[operator]

    everything = await read_all()
    assert [(e.transaction_id, e.position) for e in everything] == expected(lambda s: True)
    types = {e.position: (e.stream_type, e.event_type) for e in everything}
    for stream_type in ("User", "Order", "Post", "Product"):
        read = await read_all(stream_type=stream_type)
        assert [e.position for e in read] == [
            p for _, p, *_ in log if types[p][0] == stream_type
        ], stream_type
    for stream_id in ("o-3", "post-1", "u-5"):
        read = await read_all(stream_id=stream_id)
        assert [e.version for e in read] == list(range(1, len(read) + 1)), stream_id
        assert [e.position for e in read] == [p for _, p, s, _ in log if s == stream_id]
    chosen = ["StockReserved", "PostLiked", "UserRegistered"]
    read = await read_all(types=chosen)
    assert [e.position for e in read] == [p for _, p, *_ in log if types[p][1] in chosen]


async def test_the_feed_resumes_from_any_position_across(world: World) -> None:
    """`after` a position (the events query, a subscription's catch-up) gives the rest of the
    log in order, wherever the position lies relative to the boundary."""
    await write_workload(world)
    log = await assert_straddles(world)
    for index in sorted({0, len(log) // 3, len(log) // 2, len(log) - 2, *range(0, len(log), 9)}):
        tx, position, *_ = log[index]
        start = await world.store.checkpoint_at(position)
        assert start == FeedCheckpoint(tx, position)
        rest = await world.store.read_feed(start, limit=10_000)
        assert [(e.transaction_id, e.position) for e in rest] == [
            (t, p) for t, p, *_ in log[index + 1 :]
        ]
    assert await world.store.feed_head() == FeedCheckpoint(*log[-1][:2])
