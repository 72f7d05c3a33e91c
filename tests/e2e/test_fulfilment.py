"""Order fulfilment end to end: the server's own process confirms or rejects placed orders,
and clients see it through the mutation's `fulfilment`, `order(minPosition:)`, `orderChanged`
and `events`."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import GraphQLClient, Server
from tests.e2e.live import Subscriber
from tests.e2e.test_commands import ADDRESS, PLACE, M, new_product, new_user, place, run
from tests.e2e.test_queries import ORDER, PRODUCT

EVENTS_OF = """query($id: ID!, $types: [String!]) {
  events(streamId: $id, types: $types) { position type }
}"""
RELEASED = """subscription($after: Position, $product: ID) {
  events(after: $after, streamId: $product, types: ["StockReleased"]) { position data }
}"""


async def product(
    client: GraphQLClient, product_id: str, after: str | None = None
) -> dict[str, Any]:
    return dict((await client.execute(PRODUCT, id=product_id, min=after))["product"])


async def product_after(client: GraphQLClient, product_id: str, event_type: str) -> dict[str, Any]:
    """The product as of its last `event_type` event: the fulfilment process wrote that event,
    so the client reads its own write by the event's position."""
    found = (await client.execute(EVENTS_OF, id=product_id, types=[event_type]))["events"]
    assert found, f"no {event_type} on {product_id}"
    return await product(client, product_id, found[-1]["position"])


async def new_order(client: GraphQLClient, customer: str, *lines: tuple[str, int]) -> str:
    order = str(
        (await run(client, "createOrder", customerId=customer, shippingAddress=ADDRESS))["streamId"]
    )
    for product_id, quantity in lines:
        await run(client, "addLineItem", orderId=order, productId=product_id, quantity=quantity)
    return order


async def test_an_order_is_confirmed_paid_shipped_and_delivered(
    client: GraphQLClient, server: Server
) -> None:
    customer = await new_user(client)
    lamp, desk = await new_product(client, 1500, stock=5), await new_product(client, 9000, stock=2)
    order = await new_order(client, customer, (lamp, 2), (desk, 1))
    watcher = Subscriber(
        server, "subscription($id: ID!) { orderChanged(orderId: $id) { status } }", id=order
    )
    try:
        placed = await place(client, order)
        assert placed["fulfilment"]["status"] == "CONFIRMED"
        # `fulfilment` returned once the orders read model had the decision.
        read = (await client.execute(ORDER, id=order))["order"]
        assert (read["status"], read["version"]) == ("CONFIRMED", placed["fulfilment"]["version"])
        await watcher.until(lambda got: bool(got) and got[-1]["status"] == "CONFIRMED")

        reserved = await product_after(client, lamp, "StockReserved")
        assert (reserved["stockOnHand"], reserved["stockReserved"]) == (5, 2)
        await run(client, "payOrder", orderId=order, amountCents=12_000, method="card")
        shipped = await run(client, "shipOrder", orderId=order, carrier="UPS", trackingNumber="1Z")
        await run(client, "deliverOrder", orderId=order, signedBy="Ann")
        await watcher.until(lambda got: got[-1]["status"] == "DELIVERED")
    finally:
        await watcher.close()
    # The shipment's stock moves follow the shipment through the process: wait for them.
    async with Subscriber(
        server,
        "subscription($after: Position, $product: ID) { events(after: $after, streamId: "
        '$product, types: ["ReservedStockShipped"]) { position } }',
        after=shipped["position"],
        product=desk,
    ) as moved:
        await moved.until(lambda got: bool(got))
        desk_after = await product(client, desk, moved.received[0]["position"])
    assert (desk_after["stockOnHand"], desk_after["stockReserved"]) == (1, 0)
    assert desk_after["stockAvailable"] == 1  # as it was once the order held its desk
    statuses = [o["status"] for o in watcher.received]
    life = ["DRAFT", "PLACED", "CONFIRMED", "PAID", "SHIPPED", "DELIVERED"]
    assert statuses == sorted(set(statuses), key=life.index), "a state came twice or late"
    assert {"CONFIRMED", "DELIVERED"} <= set(statuses)


async def test_an_order_beyond_the_stock_is_rejected_naming_the_product(
    client: GraphQLClient,
) -> None:
    customer = await new_user(client)
    lamp, vase = await new_product(client, stock=5), await new_product(client, stock=1)
    order = await new_order(client, customer, (lamp, 3), (vase, 2))
    placed = await place(client, order)
    outcome = placed["fulfilment"]
    assert outcome["status"] == "REJECTED"
    sku = (await product(client, vase))["sku"]
    assert outcome["rejectionReason"] == f"not enough stock of {sku}: 1 available, 2 requested"
    # The lamp reserved for the first line is given back.
    lamp_events = (await client.execute(EVENTS_OF, id=lamp, types=None))["events"]
    assert [e["type"] for e in lamp_events] == ["ProductAdded", "StockReserved", "StockReleased"]
    assert (await product_after(client, lamp, "StockReleased"))["stockAvailable"] == 5
    assert (
        await client.code(
            M["payOrder"], input={"orderId": order, "amountCents": 1, "method": "card"}
        )
        == "RULE_VIOLATED"
    )


async def test_cancelling_a_confirmed_order_gives_its_stock_back(
    client: GraphQLClient, server: Server
) -> None:
    customer = await new_user(client)
    lamp = await new_product(client, stock=4)
    order = await new_order(client, customer, (lamp, 3))
    assert (await place(client, order))["fulfilment"]["status"] == "CONFIRMED"
    assert (await product_after(client, lamp, "StockReserved"))["stockAvailable"] == 1
    cancelled = await run(client, "cancelOrder", orderId=order, reason="found a better lamp")
    released = Subscriber(server, RELEASED, after=cancelled["position"], product=lamp)
    try:
        await released.until(lambda got: bool(got))
        event = released.received[0]
        assert event["data"] == {"product_id": lamp, "order_id": order, "quantity": 3}
        restored = await product(client, lamp, event["position"])
        assert (restored["stockReserved"], restored["stockAvailable"]) == (0, 4)
    finally:
        await released.close()


async def test_a_shipped_order_cannot_be_cancelled(client: GraphQLClient) -> None:
    customer = await new_user(client)
    lamp = await new_product(client, 1500, stock=1)
    order = await new_order(client, customer, (lamp, 1))
    assert (await place(client, order))["fulfilment"]["status"] == "CONFIRMED"
    await run(client, "payOrder", orderId=order, amountCents=1500, method="card")
    await run(client, "shipOrder", orderId=order, carrier="UPS", trackingNumber="1Z")
    refused = await client.code(M["cancelOrder"], input={"orderId": order, "reason": "late"})
    assert refused == "RULE_VIOLATED"


async def test_fulfilment_is_null_for_other_commands_and_the_same_for_a_replayed_placement(
    client: GraphQLClient,
) -> None:
    customer = await new_user(client)
    lamp = await new_product(client, stock=2)
    order = str(
        (await run(client, "createOrder", customerId=customer, shippingAddress=ADDRESS))["streamId"]
    )
    added = await client.execute(
        "mutation($input: AddLineItemInput!) { addLineItem(input: $input) { fulfilment { status } } }",
        input={"orderId": order, "productId": lamp, "quantity": 1},
    )
    assert added["addLineItem"]["fulfilment"] is None
    first = await client.execute(PLACE, input={"orderId": order, "commandId": f"place-{order}"})
    again = await client.execute(PLACE, input={"orderId": order, "commandId": f"place-{order}"})
    assert first["placeOrder"]["fulfilment"]["status"] == "CONFIRMED"
    assert again == first
