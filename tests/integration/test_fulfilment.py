"""The fulfilment process on a real store: races for stock, partial reservations, cancellations,
shipping, replays, and a runner killed halfway through an order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import build_aggregates
from domain import catalog, orders
from domain.errors import RuleViolated
from projections.catalog import ProductsProjector
from projections.fulfilment import FulfilmentProcess
from projections.orders import OrdersProjector
from projections.runner import ProjectionRunner
from store.command_handler import CommandHandler
from store.database import plain_url
from store.event_store import EventStore
from tests.integration.test_runner_processes import RunnerProcess, processes, until

__all__ = ["processes"]  # the fixture, shared with the runner process tests

ADDRESS = orders.Address(line1="1 Main St", city="Springfield", postal_code="12345", country="US")


@dataclass
class Shop:
    handler: CommandHandler
    runner: ProjectionRunner
    engine: AsyncEngine

    async def product(self, stock: int, sku: str | None = None) -> str:
        product_id = str(uuid.uuid4())
        sku = sku or f"SKU-{product_id[:8]}"
        await self.handler.handle(
            catalog.DECIDER,
            product_id,
            catalog.AddProduct(
                product_id=product_id, sku=sku, name="Lamp", price_cents=100, initial_stock=stock
            ),
        )
        return product_id

    async def order(self, *lines: tuple[str, int], place: bool = True) -> str:
        order_id = str(uuid.uuid4())
        await self.handler.handle(
            orders.DECIDER,
            order_id,
            orders.CreateOrder(
                order_id=order_id,
                customer_id="customer",
                customer_exists=True,
                shipping_address=ADDRESS,
            ),
        )
        for product_id, quantity in lines:
            sku = (await self.handler.load(catalog.DECIDER, product_id)).state.sku
            entry = orders.CatalogEntry(sku=sku, name="Lamp", unit_price_cents=100)
            await self.send(
                order_id,
                orders.AddLineItem(
                    order_id=order_id, product_id=product_id, quantity=quantity, product=entry
                ),
            )
        if place:
            await self.send(order_id, orders.PlaceOrder(order_id=order_id))
        return order_id

    async def send(self, order_id: str, command: orders.Command) -> None:
        await self.handler.handle(orders.DECIDER, order_id, command)

    async def settle(self) -> None:
        """Run the runner here until it has nothing more to do."""
        async with self.running():
            await self.settled()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(self.runner.run(stop))
        try:
            yield
        finally:
            stop.set()
            await task

    async def settled(self) -> None:
        """Wait until every checkpoint is at the end of the log, and the log stays there (what
        the process sends lengthens it)."""
        while True:
            last = await head(self.engine)
            for name in ("products", "orders", "fulfilment"):
                await self.runner.wait_for(name, last, 30)
            if await head(self.engine) == last:
                return

    async def status(self, order_id: str) -> str:
        return str((await self.handler.load(orders.DECIDER, order_id)).state.status)

    async def stock(self, product_id: str) -> catalog.Product:
        state = (await self.handler.load(catalog.DECIDER, product_id)).state
        assert isinstance(state, catalog.Product)
        return state

    async def product_events(self, product_id: str) -> list[tuple[str, dict[str, object]]]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT event_type, data::text AS data FROM events "
                    "WHERE stream_id = :id ORDER BY version"
                ),
                {"id": product_id},
            )
            return [(row.event_type, json.loads(row.data)) for row in rows]

    async def event_count(self) -> int:
        async with self.engine.connect() as connection:
            return int((await connection.execute(text("SELECT count(*) FROM events"))).scalar_one())


def shop_on(engine: AsyncEngine) -> Shop:
    aggregates = build_aggregates()
    store = EventStore(engine, aggregates.upcasters)
    handler = CommandHandler(store, aggregates)
    runner = ProjectionRunner(
        engine,
        store,
        [ProductsProjector(), OrdersProjector()],
        process_managers=[FulfilmentProcess(engine, handler)],
        poll_interval=0.05,  # the feed may be held back by other databases' transactions
    )
    return Shop(handler, runner, engine)


@pytest.fixture
async def shop(engine: AsyncEngine) -> AsyncIterator[Shop]:
    shop = shop_on(engine)
    await shop.runner.ensure_checkpoints()
    yield shop
    await shop.handler.store.close()


def never_negative(events: list[tuple[str, dict[str, object]]]) -> None:
    """Fold a product's whole log: stock on hand and reserved never below zero or each other."""
    on_hand = reserved = 0
    for event_type, data in events:
        quantity = int(data.get("quantity", 0))  # type: ignore[call-overload]
        if event_type == "ProductAdded":
            on_hand = int(data["initial_stock"])  # type: ignore[call-overload]
        elif event_type == "ProductRestocked":
            on_hand += quantity
        elif event_type == "StockReserved":
            reserved += quantity
        elif event_type == "StockReleased":
            reserved -= quantity
        elif event_type == "ReservedStockShipped":
            on_hand -= quantity
            reserved -= quantity
        assert 0 <= reserved <= on_hand, f"stock went negative at {event_type}"


async def test_twenty_orders_race_for_ten_units(shop: Shop) -> None:
    lamp = await shop.product(10)
    async with shop.running():
        # Placed concurrently while the process is running.
        placed = await asyncio.gather(*(shop.order((lamp, 1)) for _ in range(20)))
        await shop.settled()
    statuses = [await shop.status(o) for o in placed]
    assert statuses.count("CONFIRMED") == 10 and statuses.count("REJECTED") == 10
    stock = await shop.stock(lamp)
    assert (stock.on_hand, stock.reserved, stock.available) == (10, 10, 0)
    assert {r.order_id for r in stock.reservations} == {
        o for o, s in zip(placed, statuses, strict=True) if s == "CONFIRMED"
    }
    events = await shop.product_events(lamp)
    never_negative(events)
    reserved_for = [str(data["order_id"]) for kind, data in events if kind == "StockReserved"]
    assert len(reserved_for) == len(set(reserved_for)) == 10, "an order reserved twice"


async def test_orders_of_mixed_sizes_never_oversell(shop: Shop) -> None:
    lamp = await shop.product(10)
    sizes = [3, 1, 4, 1, 5, 2, 6, 2, 3, 1, 4, 2, 1, 3, 2, 5, 1, 2, 3, 1]
    placed = await asyncio.gather(*(shop.order((lamp, n)) for n in sizes))
    await shop.settle()
    statuses = [await shop.status(o) for o in placed]
    assert "PLACED" not in statuses
    confirmed = sum(n for n, s in zip(sizes, statuses, strict=True) if s == "CONFIRMED")
    stock = await shop.stock(lamp)
    assert confirmed == stock.reserved <= 10
    # Stock only ever went down here, so no rejected order would fit in what is left.
    assert all(n > stock.available for n, s in zip(sizes, statuses, strict=True) if s == "REJECTED")
    never_negative(await shop.product_events(lamp))


async def head(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(
            (await connection.execute(text("SELECT max(position) FROM events"))).scalar_one()
        )


async def test_a_line_that_cannot_be_reserved_releases_the_others_and_rejects_naming_it(
    shop: Shop,
) -> None:
    a, b = await shop.product(5), await shop.product(5)
    c = await shop.product(1, sku="LAMP-XL")
    order = await shop.order((a, 2), (b, 3), (c, 2))
    await shop.settle()
    state = (await shop.handler.load(orders.DECIDER, order)).state
    assert state.status == "REJECTED"
    assert state.rejection_reason == "not enough stock of LAMP-XL: 1 available, 2 requested"
    for product, stock in ((a, 5), (b, 5), (c, 1)):
        assert (await shop.stock(product)).available == stock
    assert [kind for kind, _ in await shop.product_events(b)] == [
        "ProductAdded",
        "StockReserved",
        "StockReleased",
    ]
    assert [kind for kind, _ in await shop.product_events(c)] == [
        "ProductAdded",
        "StockReservationDeclined",
    ]


async def test_cancelling_a_confirmed_or_paid_order_releases_its_stock(shop: Shop) -> None:
    lamp = await shop.product(10)
    confirmed, paid = await shop.order((lamp, 2)), await shop.order((lamp, 3))
    await shop.settle()
    assert (await shop.stock(lamp)).available == 5
    await shop.send(paid, orders.PayOrder(order_id=paid, amount_cents=300, method="card"))
    for order in (confirmed, paid):
        await shop.send(order, orders.CancelOrder(order_id=order, reason="changed my mind"))
    await shop.settle()
    stock = await shop.stock(lamp)
    assert (stock.on_hand, stock.reserved, stock.available) == (10, 0, 10)
    assert [await shop.status(o) for o in (confirmed, paid)] == ["CANCELLED", "CANCELLED"]


async def test_an_order_cancelled_before_the_process_saw_it_gives_everything_back(
    shop: Shop,
) -> None:
    a, b = await shop.product(4), await shop.product(4)
    order = await shop.order((a, 1), (b, 1))
    await shop.send(order, orders.CancelOrder(order_id=order, reason="too slow"))
    await shop.settle()
    assert await shop.status(order) == "CANCELLED"
    assert [(await shop.stock(p)).available for p in (a, b)] == [4, 4]


async def test_cancelling_a_shipped_order_is_refused(shop: Shop) -> None:
    lamp = await shop.product(3)
    order = await shop.order((lamp, 2))
    await shop.settle()
    await shop.send(order, orders.PayOrder(order_id=order, amount_cents=200, method="card"))
    await shop.send(order, orders.ShipOrder(order_id=order, carrier="UPS", tracking_number="1Z"))
    with pytest.raises(RuleViolated):
        await shop.send(order, orders.CancelOrder(order_id=order, reason="too late"))


async def test_shipping_turns_reservations_into_shipped_stock(shop: Shop) -> None:
    a, b = await shop.product(5), await shop.product(7)
    order = await shop.order((a, 2), (b, 3))
    await shop.settle()
    before = [await shop.stock(p) for p in (a, b)]
    await shop.send(order, orders.PayOrder(order_id=order, amount_cents=500, method="card"))
    await shop.send(order, orders.ShipOrder(order_id=order, carrier="UPS", tracking_number="1Z"))
    await shop.settle()
    after = [await shop.stock(p) for p in (a, b)]
    for was, now, shipped in zip(before, after, (2, 3), strict=True):
        assert (now.on_hand, now.reserved) == (was.on_hand - shipped, was.reserved - shipped)
        assert now.available == was.available


async def test_replaying_the_process_from_the_first_event_issues_nothing_twice(
    shop: Shop,
) -> None:
    a, b = await shop.product(10), await shop.product(1)
    await shop.order((a, 1))
    await shop.order((a, 1), (b, 2))  # rejected
    cancelled = await shop.order((a, 1), (b, 1))
    await shop.send(cancelled, orders.CancelOrder(order_id=cancelled, reason="no"))
    shipped = await shop.order((a, 1))
    await shop.settle()
    await shop.send(shipped, orders.PayOrder(order_id=shipped, amount_cents=100, method="card"))
    await shop.send(shipped, orders.ShipOrder(order_id=shipped, carrier="UPS", tracking_number="Z"))
    await shop.settle()
    written = await shop.event_count()
    stock = [await shop.stock(p) for p in (a, b)]

    async with shop.engine.begin() as connection:
        await connection.execute(text("DELETE FROM fulfilment_state"))
        await connection.execute(
            text(
                "UPDATE projection_checkpoints SET transaction_id = '0', position = 0 "
                "WHERE name = 'fulfilment'"
            )
        )
    await shop.settle()
    assert await shop.event_count() == written
    assert [await shop.stock(p) for p in (a, b)] == stock


async def test_the_process_shows_in_the_projection_statuses(shop: Shop) -> None:
    lamp = await shop.product(1)
    await shop.order((lamp, 1))
    await shop.settle()
    (status,) = [s for s in await shop.runner.statuses() if s.name == "fulfilment"]
    assert (status.status, status.lag) == ("running", 0)
    assert status.position == await head(shop.engine)


async def test_a_runner_killed_between_two_lines_finishes_the_order_exactly_once(
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
    processes: list[RunnerProcess],
) -> None:
    shop = shop_on(engine)
    a, b, c = await shop.product(5), await shop.product(5), await shop.product(5)
    # Hold the lock every append takes on b's stream: the runner will block reserving line two.
    blocker = await asyncpg.connect(plain_url(database_url))
    await blocker.execute("BEGIN")
    await blocker.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", b)
    try:
        # Another order goes through the same batches just ahead: its confirmation is sent,
        # and committed, before the runner blocks, and the killed runner never records that.
        other = await shop.order((c, 1))
        order = await shop.order((a, 2), (b, 3))
        first = RunnerProcess(database_url, tmp_path / "first.log")
        processes.append(first)

        async def between_the_lines() -> bool:
            reserved = [k for k, d in await shop.product_events(a) if k == "StockReserved"]
            async with engine.connect() as connection:
                waiting = (
                    await connection.execute(
                        text(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND NOT granted AND pid <> :me"
                        ),
                        {"me": blocker.get_server_pid()},
                    )
                ).scalar_one()
            return bool(reserved) and waiting > 0

        await until(between_the_lines)
        first.kill(signal.SIGKILL)
    finally:
        await blocker.execute("ROLLBACK")
        await blocker.close()
    assert await shop.status(order) == "PLACED"

    second = RunnerProcess(database_url, tmp_path / "second.log")
    processes.append(second)

    async def decided() -> bool:
        return await shop.status(order) != "PLACED"

    await until(decided)
    assert [await shop.status(o) for o in (order, other)] == ["CONFIRMED", "CONFIRMED"]
    async with engine.connect() as connection:
        confirmations = (
            await connection.execute(
                text("SELECT count(*) FROM events WHERE stream_id = :id AND event_type = :t"),
                {"id": other, "t": "OrderConfirmed"},
            )
        ).scalar_one()
    assert confirmations == 1, "the confirmation was sent again as a new command"
    for product, quantity in ((a, 2), (b, 3), (c, 1)):
        reservations = [d for k, d in await shop.product_events(product) if k == "StockReserved"]
        assert [r["quantity"] for r in reservations] == [quantity], "reserved more than once"
        assert (await shop.stock(product)).available == 5 - quantity
    await shop.handler.store.close()
