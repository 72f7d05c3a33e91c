"""The reviews read model against the truth of the log: a seeded, concurrent workload with
repeated pairs, two writers of their own (as two processes would be), batches that split it
anywhere, and a rebuild."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import build_aggregates
from domain import catalog, reviews, users
from domain.errors import Duplicate
from projections.review_queries import get_ratings, list_reviews
from projections.reviews import ReviewsProjector
from projections.runner import ProjectionRunner
from store.command_handler import CommandHandler
from store.database import create_engine
from store.event_store import EventStore
from tests.visibility import until_all_visible

PRODUCTS = [f"p-{n}" for n in range(5)]
USERS = [f"u-{n}" for n in range(12)]


@dataclass
class Writer:
    handler: CommandHandler
    store: EventStore
    engine: AsyncEngine


@pytest.fixture
async def writers(database_url: str) -> AsyncIterator[list[Writer]]:
    """Two writers, each with its own engine and store, as two service processes have."""
    made = []
    for _ in range(2):
        engine = create_engine(database_url, pool_size=8)
        aggregates = build_aggregates()
        store = EventStore(engine, aggregates.upcasters)
        made.append(Writer(CommandHandler(store, aggregates), store, engine))
    handler = made[0].handler
    for user in USERS:
        command = users.RegisterUser(user_id=user, email=f"{user}@example.com", name=user, age=30)
        await handler.handle(users.DECIDER, user, command)
    for n, product in enumerate(PRODUCTS):
        added = catalog.AddProduct(product_id=product, sku=f"S-{n}", name=product, price_cents=1)
        await handler.handle(catalog.DECIDER, product, added)
    yield made
    for writer in made:
        await writer.store.close()
        await writer.engine.dispose()


def review(product: str, user: str, rating: int) -> reviews.ReviewProduct:
    return reviews.ReviewProduct(
        review_id=reviews.review_id(product, user),
        product_id=product,
        product_exists=True,
        user_id=user,
        user_exists=True,
        rating=rating,
        text=f"{rating} stars",
    )


async def send(writer: Writer, command: reviews.ReviewProduct) -> bool:
    """True if the review was recorded, False if it was a duplicate."""
    try:
        await writer.handler.handle(reviews.DECIDER, command.review_id, command)
    except Duplicate:
        return False
    return True


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_ratings_equal_the_log_under_concurrent_duplicates_and_any_batching(
    writers: list[Writer], engine: AsyncEngine, seed: int
) -> None:
    rng = random.Random(seed)
    # Every pair is sent two to four times, by both writers at once, with different ratings:
    # exactly one send of each pair may be recorded, whichever it is.
    pairs = rng.sample([(p, u) for p in PRODUCTS for u in USERS], 30)
    sends = [
        (rng.choice(writers), review(p, u, rng.randint(1, 5)))
        for p, u in pairs
        for _ in range(rng.randint(2, 4))
    ]
    rng.shuffle(sends)
    accepted = await asyncio.gather(*(send(w, c) for w, c in sends))
    recorded = [c for (_, c), ok in zip(sends, accepted, strict=True) if ok]
    assert sorted((c.product_id, c.user_id) for c in recorded) == sorted(pairs)

    # The truth: the log's ProductReviewed events, one per pair, folded here.
    store = writers[0].store
    await until_all_visible(store)
    logged = [e for e in await store.read_all(after_position=0, limit=10_000)]
    logged = [e for e in logged if e.event_type == "ProductReviewed"]
    assert len(logged) == len(pairs)
    assert {(e.data["product_id"], e.data["user_id"]): e.data["rating"] for e in logged} == {
        (c.product_id, c.user_id): c.rating for c in recorded
    }
    truth: dict[str, list[int]] = defaultdict(list)
    for event in logged:
        truth[event.data["product_id"]].append(event.data["rating"])

    runner = ProjectionRunner(engine, store, [ReviewsProjector()], batch_size=rng.randint(1, 9))
    await runner.ensure_checkpoints()
    while await runner.run_once():
        pass
    ratings = await get_ratings(engine, PRODUCTS)
    assert {p: (r.count, r.average) for p, r in ratings.items()} == {
        p: (len(rs), sum(rs) / len(rs)) for p, rs in truth.items()
    }
    for product in PRODUCTS:
        page = await list_reviews(engine, product_id=product, first=100)
        assert page.total_count == len(truth.get(product, []))
        assert sorted(row.rating for _, row in page.items) == sorted(truth.get(product, []))

    # A blue/green rebuild reads the same log into the same tables.
    before = await table_rows(engine)
    await runner.drive_rebuild("reviews", lambda position, head: None)
    assert await table_rows(engine) == before


async def table_rows(engine: AsyncEngine) -> list[list[str]]:
    async with engine.connect() as connection:
        return [
            sorted(
                row[0]
                for row in await connection.execute(text(f"SELECT to_jsonb(t)::text FROM {t} t"))
            )
            for t in ("reviews_view", "product_ratings")
        ]


async def test_the_same_pair_sent_at_once_by_two_writers_is_recorded_once(
    writers: list[Writer],
) -> None:
    for round_ in range(10):
        product, user = PRODUCTS[round_ % len(PRODUCTS)], USERS[round_]
        outcomes = await asyncio.gather(
            *(
                send(writer, review(product, user, 1 + n % 5))
                for n, writer in enumerate(writers * 3)
            )
        )
        assert outcomes.count(True) == 1, outcomes
        loaded = await writers[0].handler.load(reviews.DECIDER, reviews.review_id(product, user))
        assert loaded.version == 1
