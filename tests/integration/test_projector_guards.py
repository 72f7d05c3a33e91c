"""Guards every registered projector gets without a test of its own (issue 12, item 9).

A seeded, varied workload goes through the real deciders (every event type any projector
handles, refusals skipped), and each projector of `api.app.all_projectors()` applies the whole
feed to fresh copies of its tables: in batches of 500, in batches of 1, and twice over (a
replay of events already applied must change nothing). The copies must hold the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import all_projectors, build_aggregates
from domain import catalog, orders, posts, reviews, users
from domain.errors import DomainError
from projections.projector import Projector, Tables, apply_events
from store.command_handler import CommandHandler
from store.event_store import EventStore
from store.events import FEED_START, RecordedEvent

ADDRESS = orders.Address(line1="1 Main St", city="Springfield", postal_code="12345", country="US")


async def write_varied_workload(handler: CommandHandler, seed: int, commands: int) -> None:
    """Users, products, orders, posts and reviews, then `commands` random commands on them; whatever
    a decider refuses is skipped."""
    rng = random.Random(seed)
    user_ids = [f"u-{n}" for n in range(8)]
    product_ids = [f"p-{n}" for n in range(4)]
    order_ids = [f"o-{n}" for n in range(24)]
    post_ids = [f"post-{n}" for n in range(6)]
    prices = {p: 100 * (n + 1) for n, p in enumerate(product_ids)}
    # Half the users are bound to a token subject (and own their streams), half to none.
    subjects = {u: f"subject-{n}" if n % 2 == 0 else None for n, u in enumerate(user_ids)}
    for n, user_id in enumerate(user_ids):
        command = users.RegisterUser(
            user_id=user_id,
            email=f"{user_id}@example.com",
            name=f"User {n}",
            age=13 + 9 * n,
            subject=subjects[user_id],
        )
        await handler.handle(users.DECIDER, user_id, command)
    for n, product_id in enumerate(product_ids):
        added = catalog.AddProduct(
            product_id=product_id,
            sku=f"SKU-{n}",
            name=f"Product {n}",
            price_cents=prices[product_id],
            initial_stock=rng.randint(0, 5),
        )
        await handler.handle(catalog.DECIDER, product_id, added)
    for order_id in order_ids:
        customer = rng.choice(user_ids)
        created = orders.CreateOrder(
            order_id=order_id,
            customer_id=customer,
            customer_exists=True,
            shipping_address=ADDRESS,
            customer_subject=subjects[customer],
        )
        await handler.handle(orders.DECIDER, order_id, created)
    for n, post_id in enumerate(post_ids):
        post = posts.CreatePost(
            post_id=post_id,
            author_id=user_ids[n],
            author_exists=True,
            message=f"Hello {n}",
            author_subject=subjects[user_ids[n]],
        )
        await handler.handle(posts.DECIDER, post_id, post)

    async def on_user() -> None:
        user_id = rng.choice(user_ids)
        name = rng.choice([None, f"Renamed {rng.randint(0, 99)}"])
        age = rng.choice([None, rng.randint(13, 120)])
        command = users.UpdateUser(user_id=user_id, name=name, age=age)
        await handler.handle(users.DECIDER, user_id, command)

    async def on_product() -> None:
        product_id = rng.choice(product_ids)
        order_id = rng.choice(order_ids)
        commands: list[catalog.Command] = [
            catalog.RestockProduct(product_id=product_id, quantity=rng.randint(1, 5)),
            catalog.ChangeProductPrice(product_id=product_id, price_cents=rng.randint(1, 999)),
            catalog.ReserveStock(
                product_id=product_id, order_id=order_id, quantity=rng.randint(1, 12)
            ),
            catalog.ReleaseStock(product_id=product_id, order_id=order_id),
            catalog.ShipReservedStock(product_id=product_id, order_id=order_id),
        ]
        await handler.handle(catalog.DECIDER, product_id, rng.choice(commands))

    async def an_order(order_id: str) -> None:
        """Lines added (and one perhaps removed), placed, then down a random path."""

        async def send(command: orders.Command) -> None:
            await handler.handle(orders.DECIDER, order_id, command)

        chosen = rng.sample(product_ids, rng.randint(1, 3))
        for product_id in [*chosen, chosen[0]]:
            entry = orders.CatalogEntry(
                sku=f"SKU-{product_ids.index(product_id)}",
                name=f"Product {product_id}",
                unit_price_cents=prices[product_id],
            )
            await send(
                orders.AddLineItem(
                    order_id=order_id,
                    product_id=product_id,
                    quantity=rng.randint(1, 3),
                    product=entry,
                )
            )
        if len(chosen) > 1 and rng.random() < 0.5:
            await send(orders.RemoveLineItem(order_id=order_id, product_id=chosen[-1]))
        path = rng.choice(["draft", "cancel", "reject", "confirm", "pay", "ship", "deliver"])
        if path == "draft":
            return
        if path != "cancel":
            await send(orders.PlaceOrder(order_id=order_id))
        if path == "reject":
            await send(orders.RejectOrder(order_id=order_id, reason="out of stock"))
            return
        if path != "cancel":
            await send(orders.ConfirmOrder(order_id=order_id))
        if path in ("pay", "ship", "deliver"):
            total = (await handler.load(orders.DECIDER, order_id)).state.total_cents
            await send(orders.PayOrder(order_id=order_id, amount_cents=total, method="card"))
        if path in ("ship", "deliver"):
            tracking = f"T-{order_id}"
            await send(orders.ShipOrder(order_id=order_id, carrier="UPS", tracking_number=tracking))
        if path == "deliver":
            await send(orders.DeliverOrder(order_id=order_id, signed_by="Front desk"))
        if path in ("cancel", "confirm") and rng.random() < 0.7:
            await send(orders.CancelOrder(order_id=order_id, reason="changed my mind"))

    async def on_post() -> None:
        post_id = rng.choice(post_ids)
        user_id = rng.choice(user_ids)
        comment_id = f"c-{rng.randint(0, 3)}"
        commands: list[posts.Command] = [
            posts.EditPost(post_id=post_id, message=f"Edited {rng.randint(0, 99)}"),
            posts.LikePost(post_id=post_id, user_id=user_id, user_exists=True),
            posts.LikePost(post_id=post_id, user_id=user_id, user_exists=True),
            posts.UnlikePost(post_id=post_id, user_id=user_id),
            posts.AddComment(
                post_id=post_id,
                comment_id=comment_id,
                author_id=user_id,
                author_exists=True,
                text=f"Nice {rng.randint(0, 99)}",
            ),
            posts.EditComment(post_id=post_id, comment_id=comment_id, text="Edited"),
            posts.RemoveComment(post_id=post_id, comment_id=comment_id),
        ]
        await handler.handle(posts.DECIDER, post_id, rng.choice(commands))

    async def on_review(rng: random.Random) -> None:
        product_id, user_id = rng.choice(product_ids), rng.choice(user_ids)  # repeats refused
        command = reviews.ReviewProduct(
            review_id=reviews.review_id(product_id, user_id),
            product_id=product_id,
            product_exists=True,
            user_id=user_id,
            user_exists=True,
            rating=rng.randint(1, 5),
            text=f"Review {rng.randint(0, 99)}",
        )
        await handler.handle(reviews.DECIDER, command.review_id, command)

    for order_id in order_ids:
        await an_order(order_id)
    steps: list[Callable[[], Awaitable[None]]] = [on_user, on_product, on_post]
    for _ in range(commands):
        try:
            await rng.choice(steps)()
        except DomainError:
            pass  # refused: the workload is random, the deciders keep it valid
    for post_id in rng.sample(post_ids, 2):
        await handler.handle(posts.DECIDER, post_id, posts.DeletePost(post_id=post_id))
    reviewing = random.Random(seed + 1)  # apart, so the steps above stay as they were
    for _ in range(commands // 10):
        try:
            await on_review(reviewing)
        except DomainError:
            pass  # the pair was reviewed already


async def whole_feed(store: EventStore) -> list[RecordedEvent]:
    events: list[RecordedEvent] = []
    place = FEED_START
    while batch := await store.read_feed(place, limit=1000):
        events.extend(batch)
        place = batch[-1].checkpoint
    return events


async def fresh_tables(engine: AsyncEngine, projector: Projector, label: str) -> Tables:
    tables = Tables({table: f"{table}__guard_{label}" for table in projector.tables})
    async with engine.begin() as connection:
        for table in projector.tables:
            await connection.execute(
                text(f"CREATE TABLE {tables[table]} (LIKE {table} INCLUDING ALL)")
            )
    return tables


async def apply_in_batches(
    engine: AsyncEngine,
    projector: Projector,
    events: Sequence[RecordedEvent],
    tables: Tables,
    batch_size: int,
) -> None:
    """As the runner does: a transaction a batch, the projector's events decoded."""
    for start in range(0, len(events), batch_size):
        async with engine.begin() as connection:
            await apply_events(connection, projector, events[start : start + batch_size], tables)


async def contents(engine: AsyncEngine, tables: Tables, logical: Sequence[str]) -> list[list[str]]:
    """Every row of every table, as JSON, in a stable order."""
    async with engine.connect() as connection:
        return [
            sorted(
                row[0]
                for row in await connection.execute(
                    text(f"SELECT to_jsonb(t)::text FROM {tables[table]} AS t")
                )
            )
            for table in logical
        ]


async def test_every_projector_is_idempotent_and_independent_of_batch_size(
    engine: AsyncEngine,
) -> None:
    aggregates = build_aggregates()
    store = EventStore(engine, aggregates.upcasters)
    try:
        await write_varied_workload(CommandHandler(store, aggregates), seed=12, commands=400)
        events = await whole_feed(store)
    finally:
        await store.close()
    written = {event.event_type for event in events}
    for projector in all_projectors():
        missing = projector.event_types - written
        assert not missing, f"the workload writes no {sorted(missing)}: extend it"
        once = await fresh_tables(engine, projector, "once")
        await apply_in_batches(engine, projector, events, once, 500)
        expected = await contents(engine, once, projector.tables)
        assert any(expected), f"{projector.name} wrote nothing"

        one_by_one = await fresh_tables(engine, projector, "one_by_one")
        await apply_in_batches(engine, projector, events, one_by_one, 1)
        assert await contents(engine, one_by_one, projector.tables) == expected, (
            f"{projector.name}: batches of 1 and of 500 differ"
        )

        await apply_in_batches(engine, projector, events, once, 500)
        assert await contents(engine, once, projector.tables) == expected, (
            f"{projector.name}: applying the feed again changed its tables"
        )
