"""Money above 32 bits end to end (issue 11): orders up to the domain's largest total are
projected, confirmed, listed and paid; one cent more is refused and writes nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg

from tests.e2e.conftest import GraphQLClient
from tests.e2e.test_commands import ADDRESS, M, event_count, new_user, run

TOP_PRICE = 100_000_000
"""The catalog's largest unit price, in cents ($1,000,000.00)."""
LARGEST_TOTAL = 1_000_000_000_000
"""The largest order total the domain accepts, in cents ($10,000,000,000.00)."""
INT32 = 2**31 - 1

PLACE = """mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { position fulfilment { status totalCents } }
}"""
PAY = """mutation($input: PayOrderAmountInput!) {
  payOrderAmount(input: $input) { position events { type data } }
}"""
ORDER = """query($id: ID!, $min: Position) { order(id: $id, minPosition: $min) {
  status totalCents total paidCents paid items { quantity unitPriceCents lineTotalCents lineTotal }
} }"""
CONTRACT_READS = """query($id: ID!, $customer: ID, $min: Position) {
  order(id: $id, minPosition: $min) { status totalCents items { lineTotalCents } }
  orders(customerId: $customer, minPosition: $min) { edges { node { id totalCents } } }
}"""
ORDERS = """query($customer: ID, $min: Position) {
  orders(customerId: $customer, minPosition: $min) { edges { node { id totalCents total } } }
}"""
PROJECTIONS = "{ projections { name status error } }"
REBUILD = 'mutation { rebuildProjection(name: "orders") { name status } }'


async def product(client: GraphQLClient, price: int, stock: int) -> str:
    sku = f"BIG-{uuid.uuid4().hex[:10]}"
    result = await run(
        client, "addProduct", sku=sku, name="Big", priceCents=price, initialStock=stock
    )
    return str(result["streamId"])


async def new_order(client: GraphQLClient, customer: str) -> str:
    result = await run(client, "createOrder", customerId=customer, shippingAddress=ADDRESS)
    return str(result["streamId"])


async def projection_status(client: GraphQLClient, name: str) -> dict[str, Any]:
    (status,) = [p for p in (await client.execute(PROJECTIONS))["projections"] if p["name"] == name]
    return dict(status)


async def read_order(client: GraphQLClient, order: str, position: str) -> dict[str, Any]:
    return dict((await client.execute(ORDER, id=order, min=position))["order"])


async def test_an_order_over_32_bits_keeps_the_orders_read_model_running(
    client: GraphQLClient,
) -> None:
    customer = await new_user(client)
    top = await product(client, TOP_PRICE, stock=22)
    order = await new_order(client, customer)
    await run(client, "addLineItem", orderId=order, productId=top, quantity=22)
    total = 22 * TOP_PRICE
    assert total > INT32

    # What frontends ask today, through the contract's fields only.
    placed = (await client.execute(PLACE, input={"orderId": order}))["placeOrder"]
    assert placed["fulfilment"] == {"status": "CONFIRMED", "totalCents": total}
    read = await client.execute(CONTRACT_READS, id=order, customer=customer, min=placed["position"])
    assert read == {
        "order": {"status": "CONFIRMED", "totalCents": total, "items": [{"lineTotalCents": total}]},
        "orders": {"edges": [{"node": {"id": order, "totalCents": total}}]},
    }
    assert await projection_status(client, "orders") == {
        "name": "orders",
        "status": "running",
        "error": None,
    }
    read = await read_order(client, order, placed["position"])
    assert (read["status"], read["totalCents"], read["total"]) == ("CONFIRMED", total, total)
    assert read["items"] == [
        {
            "quantity": 22,
            "unitPriceCents": TOP_PRICE,
            "lineTotalCents": total,
            "lineTotal": total,
        }
    ]

    # The contract's 32-bit amountCents cannot carry it; payOrderAmount's Cents can.
    payment = {"orderId": order, "amountCents": total, "method": "wire"}
    assert await client.code(M["payOrder"], input=payment) == "VALIDATION_FAILED"
    paid = await client.execute(PAY, input={"orderId": order, "amount": total, "method": "wire"})
    assert paid["payOrderAmount"]["events"] == [
        {"type": "OrderPaid", "data": {"order_id": order, "amount_cents": total, "method": "wire"}}
    ]
    read = await read_order(client, order, paid["payOrderAmount"]["position"])
    assert (read["status"], read["paidCents"], read["paid"]) == ("PAID", total, total)

    # Replaying every order from the first event goes through it too.
    assert (await client.execute(REBUILD))["rebuildProjection"]["name"] == "orders"
    deadline = time.monotonic() + 30
    while (status := await projection_status(client, "orders"))["status"] != "running":
        assert status["status"] == "rebuilding" and time.monotonic() < deadline, status
        await asyncio.sleep(0.1)
    rebuilt = await read_order(client, order, paid["payOrderAmount"]["position"])
    assert (rebuilt["totalCents"], rebuilt["paidCents"]) == (total, total)


async def test_the_largest_total_is_accepted_listed_and_paid_and_a_cent_more_refused(
    client: GraphQLClient, db: asyncpg.Connection
) -> None:
    customer = await new_user(client)
    order = await new_order(client, customer)
    lines = LARGEST_TOTAL // (1000 * TOP_PRICE)
    assert lines * 1000 * TOP_PRICE == LARGEST_TOTAL
    for _ in range(lines):
        line = await product(client, TOP_PRICE, stock=1000)
        await run(client, "addLineItem", orderId=order, productId=line, quantity=1000)
    cent = await product(client, 1, stock=1)

    before = await event_count(db)
    refused = await client.error(
        M["addLineItem"], input={"orderId": order, "productId": cent, "quantity": 1}
    )
    assert refused["extensions"]["code"] == "VALIDATION_FAILED"
    assert "1000000000000" in refused["message"], refused
    assert "1000000000001" in refused["message"], refused
    assert await event_count(db) == before

    # Ten lines to reserve, one after the other: longer than placeOrder's fulfilment waits.
    placed = await run(client, "placeOrder", orderId=order)
    deadline = time.monotonic() + 30
    while (read := await read_order(client, order, placed["position"]))["status"] != "CONFIRMED":
        assert read["status"] == "PLACED" and time.monotonic() < deadline, read
        await asyncio.sleep(0.1)
    assert (read["totalCents"], read["total"]) == (LARGEST_TOTAL, LARGEST_TOTAL)
    listed = (await client.execute(ORDERS, customer=customer, min=placed["position"]))["orders"]
    assert listed["edges"] == [
        {"node": {"id": order, "totalCents": LARGEST_TOTAL, "total": LARGEST_TOTAL}}
    ]

    paid = await client.execute(
        PAY, input={"orderId": order, "amount": LARGEST_TOTAL, "method": "wire"}
    )
    read = await read_order(client, order, paid["payOrderAmount"]["position"])
    assert (read["status"], read["paid"]) == ("PAID", LARGEST_TOTAL)
    assert sum(item["lineTotal"] for item in read["items"]) == LARGEST_TOTAL


async def test_cents_are_whole_numbers_within_javascripts_safe_integers(
    client: GraphQLClient, db: asyncpg.Connection
) -> None:
    order = str(uuid.uuid4())
    before = await event_count(db)
    for amount in (2.5, 100.0, "12x", "1e3", " 5", -1, 2**53, True, None):
        payment = {"orderId": order, "amount": amount, "method": "card"}
        assert await client.code(PAY, input=payment) == "VALIDATION_FAILED", amount
    # A whole number, or its decimal string, reaches the order (unknown here).
    for amount in (2**53 - 1, "4500"):
        payment = {"orderId": order, "amount": amount, "method": "card"}
        assert await client.code(PAY, input=payment) == "NOT_FOUND", amount
    assert await event_count(db) == before
