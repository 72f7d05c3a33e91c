"""`minPosition` holds for every read model a request reads, not only its query's own: a product
read at a position waits for its rating's read model too, an order for its customer's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.requests import Request

from api.app import services
from api.auth import OPEN_MODE
from api.context import Context, Services
from api.loaders import Loaders
from api.schema import build_schema
from api.settings import Settings
from domain import catalog, orders, reviews, users
from projections.projector import Tables
from tests.visibility import until_all_visible

PRODUCT = """query($id: ID!, $min: Position) {
  product(id: $id, minPosition: $min) { name rating { count } }
}"""
ORDER = """query($id: ID!, $min: Position) {
  order(id: $id, minPosition: $min) { id customer { name } }
}"""
ADDRESS = orders.Address(line1="1 St", city="C", postal_code="1", country="US")


@pytest.fixture
async def built(database_url: str) -> AsyncIterator[Services]:
    settings = Settings(database_url=database_url, run_projections=False, stale_read_timeout=0.3)
    async with services(settings) as built:
        yield built


async def run(built: Services, document: str, **variables: Any) -> Any:
    context = Context(
        services=built,
        loaders=Loaders.for_request(built.engine),
        request=Request({"type": "http", "headers": [], "method": "POST"}),
        identity=OPEN_MODE,
    )
    schema = build_schema(built.settings)
    return await schema.execute(document, variable_values=variables, context_value=context)


async def project_only(built: Services, *names: str) -> None:
    """Bring only the read models `names` up to the head; the others stay where they are."""
    await until_all_visible(built.store)
    for name in names:
        projector = built.runner.projector(name)
        while await built.runner.catch_up(projector, name, Tables.live(projector.tables)):
            pass


async def test_a_nested_field_of_another_read_model_waits_for_the_position_too(
    built: Services,
) -> None:
    handler = built.handler
    await handler.handle(
        users.DECIDER, "u1", users.RegisterUser(user_id="u1", email="u@x.io", name="Ada", age=30)
    )
    await handler.handle(
        catalog.DECIDER,
        "p1",
        catalog.AddProduct(product_id="p1", sku="S1", name="Lamp", price_cents=100),
    )
    command = reviews.ReviewProduct(
        review_id=reviews.review_id("p1", "u1"),
        product_id="p1",
        product_exists=True,
        user_id="u1",
        user_exists=True,
        rating=5,
        text="Good",
    )
    reviewed = await handler.handle(reviews.DECIDER, command.review_id, command)
    await project_only(built, "products", "users")

    # The products read model has the position; the reviews one does not: the rating waits for
    # it, and says so, rather than answer a count the client's own review is missing from.
    lagging = await run(built, PRODUCT, id="p1", min=str(reviewed.position))
    assert lagging.errors is not None
    assert lagging.errors[0].path == ["product", "rating"]
    assert lagging.errors[0].extensions["code"] == "STALE_READ_TIMEOUT"
    # Without a position nothing waits: the read model as it is.
    as_is = await run(built, PRODUCT, id="p1")
    assert as_is.errors is None and as_is.data["product"]["rating"] == {"count": 0}

    await project_only(built, "reviews")
    caught = await run(built, PRODUCT, id="p1", min=str(reviewed.position))
    assert caught.errors is None, caught.errors
    assert caught.data == {"product": {"name": "Lamp", "rating": {"count": 1}}}

    # An order read at the position of its customer's rename waits for the users read model.
    created = orders.CreateOrder(
        order_id="o1", customer_id="u1", customer_exists=True, shipping_address=ADDRESS
    )
    await handler.handle(orders.DECIDER, "o1", created)
    renamed = await handler.handle(
        users.DECIDER, "u1", users.UpdateUser(user_id="u1", name="Ada L.")
    )
    await project_only(built, "orders")
    stale = await run(built, ORDER, id="o1", min=str(renamed.position))
    assert stale.errors is not None
    assert stale.errors[0].extensions["code"] == "STALE_READ_TIMEOUT"
    await project_only(built, "users")
    fresh = await run(built, ORDER, id="o1", min=str(renamed.position))
    assert fresh.errors is None, fresh.errors
    assert fresh.data["order"]["customer"] == {"name": "Ada L."}
