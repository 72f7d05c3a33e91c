"""Nested reads cost one SQL statement per level, however many rows a page holds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event
from starlette.requests import Request

from api.app import services
from api.auth import OPEN_MODE
from api.context import Context, Services
from api.loaders import Loaders
from api.schema import build_schema
from api.settings import Settings
from domain import catalog, orders, users
from tests.visibility import until_all_visible

ORDERS = """query($first: Int) { orders(first: $first) { edges { node {
  id customer { id name } items { quantity product { id sku stockAvailable } }
} } } }"""


@pytest.fixture
async def built(database_url: str) -> AsyncIterator[Services]:
    # No runner, and a live feed that reads only when rung: the statements counted are the
    # request's own (a safety poll landing mid-request was counted as one more).
    settings = Settings(database_url=database_url, run_projections=False, safety_poll=3600)
    async with services(settings) as built:
        yield built


async def seed(built: Services, count: int) -> None:
    handler = built.handler
    for i in range(count):
        user_id, product_id, order_id = f"u{i}", f"p{i}", f"o{i}"
        await handler.handle(
            users.DECIDER,
            user_id,
            users.RegisterUser(
                user_id=user_id, email=f"u{i}@example.com", name=f"User {i}", age=30
            ),
        )
        await handler.handle(
            catalog.DECIDER,
            product_id,
            catalog.AddProduct(
                product_id=product_id, sku=f"SKU-{i}", name=f"Thing {i}", price_cents=100
            ),
        )
        await handler.handle(
            orders.DECIDER,
            order_id,
            orders.CreateOrder(
                order_id=order_id,
                customer_id=user_id,
                customer_exists=True,
                shipping_address=orders.Address(
                    line1="1 St", city="C", postal_code="1", country="US"
                ),
            ),
        )
        entry = orders.CatalogEntry(sku=f"SKU-{i}", name=f"Thing {i}", unit_price_cents=100)
        await handler.handle(
            orders.DECIDER,
            order_id,
            orders.AddLineItem(order_id=order_id, product_id=product_id, quantity=1, product=entry),
        )
    await until_all_visible(built.store)
    while await built.runner.run_once():
        pass


async def statements_for(built: Services, first: int) -> tuple[int, Any]:
    count = 0

    def counted(*_: Any) -> None:
        nonlocal count
        count += 1

    sync_engine = built.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", counted)
    try:
        context = Context(
            services=built,
            loaders=Loaders.for_request(built.engine),
            request=Request({"type": "http", "headers": [], "method": "POST"}),
            identity=OPEN_MODE,  # an admin: every customer's orders
        )
        result = await build_schema(built.settings).execute(
            ORDERS, variable_values={"first": first}, context_value=context
        )
    finally:
        event.remove(sync_engine, "before_cursor_execute", counted)
    assert result.errors is None, result.errors
    return count, result.data


async def test_listing_orders_with_customers_and_products_runs_a_bounded_number_of_statements(
    built: Services,
) -> None:
    await seed(built, 50)
    few, few_data = await statements_for(built, 5)
    many, many_data = await statements_for(built, 50)
    assert len(many_data["orders"]["edges"]) == 50
    node = many_data["orders"]["edges"][49]["node"]
    assert node["customer"]["name"] == "User 49"
    assert node["items"][0]["product"]["sku"] == "SKU-49"
    # orders page + total count + lines + customers + products, for 5 rows as for 50.
    assert few == many <= 5
