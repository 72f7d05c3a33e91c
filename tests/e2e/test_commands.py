"""Every command mutation end to end: happy paths, and a refused input for each one."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from tests.e2e.conftest import GraphQLClient, unique_email

RESULT = "{ streamId version position events { type data } }"


def mutation(name: str, input_type: str) -> str:
    return f"mutation($input: {input_type}!) {{ {name}(input: $input) {RESULT} }}"


M = {
    name: mutation(name, name[0].upper() + name[1:] + "Input")
    for name in (
        "registerUser",
        "addProduct",
        "restockProduct",
        "changeProductPrice",
        "createOrder",
        "addLineItem",
        "removeLineItem",
        "placeOrder",
        "payOrder",
        "shipOrder",
        "deliverOrder",
        "cancelOrder",
        "createPost",
        "editPost",
        "deletePost",
        "likePost",
        "unlikePost",
        "addComment",
        "editComment",
        "removeComment",
    )
}
ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}
STATE = "query($id: ID!) { aggregateState(streamId: $id) { version state } }"


async def run(client: GraphQLClient, operation: str, /, **fields: Any) -> dict[str, Any]:
    return dict((await client.execute(M[operation], input=fields))[operation])


async def event_count(db: asyncpg.Connection) -> int:
    """Events written by clients' commands: the fulfilment process works in the background
    (on earlier tests' orders too) and its writes are no refused mutation's."""
    return int(
        await db.fetchval(
            "SELECT count(*) FROM events WHERE metadata->>'actor' IS DISTINCT FROM 'fulfilment'"
        )
    )


PLACE = """mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    position events { data } fulfilment { status version rejectionReason }
  }
}"""


async def place(client: GraphQLClient, order: str) -> dict[str, Any]:
    """Place `order` and wait for the fulfilment process to confirm or reject it."""
    return dict((await client.execute(PLACE, input={"orderId": order}))["placeOrder"])


async def new_user(client: GraphQLClient) -> str:
    return str(
        (await run(client, "registerUser", email=unique_email(), name="Buyer", age=40))["streamId"]
    )


async def new_product(client: GraphQLClient, price: int = 1500, stock: int = 10) -> str:
    sku = f"SKU-{uuid.uuid4().hex[:10]}"
    result = await run(
        client, "addProduct", sku=sku, name="Lamp", priceCents=price, initialStock=stock
    )
    return str(result["streamId"])


async def state(client: GraphQLClient, stream_id: str) -> dict[str, Any]:
    return dict((await client.execute(STATE, id=stream_id))["aggregateState"]["state"])


async def test_the_full_life_of_an_order(client: GraphQLClient) -> None:
    customer = await new_user(client)
    lamp, desk = await new_product(client, 1500), await new_product(client, 25_000)
    order = (await run(client, "createOrder", customerId=customer, shippingAddress=ADDRESS))[
        "streamId"
    ]
    await run(client, "addLineItem", orderId=order, productId=lamp, quantity=2)
    await run(client, "addLineItem", orderId=order, productId=desk, quantity=1)
    await run(client, "addLineItem", orderId=order, productId=lamp, quantity=1)
    await run(client, "changeProductPrice", productId=lamp, priceCents=1)  # too late for this order
    await run(client, "removeLineItem", orderId=order, productId=desk)
    placed = await place(client, order)
    assert placed["events"][0]["data"]["total_cents"] == 4500
    assert placed["fulfilment"]["status"] == "CONFIRMED"
    await run(client, "payOrder", orderId=order, amountCents=4500, method="card")
    await run(client, "shipOrder", orderId=order, carrier="UPS", trackingNumber="1Z999")
    delivered = await run(client, "deliverOrder", orderId=order, signedBy="Ann")
    assert [e["type"] for e in delivered["events"]] == ["OrderDelivered"]
    final = await state(client, order)
    assert final["status"] == "DELIVERED"
    assert [(line["quantity"], line["unit_price_cents"]) for line in final["lines"]] == [(3, 1500)]
    assert (final["paid_cents"], final["carrier"], final["signed_by"]) == (4500, "UPS", "Ann")


async def test_a_cancelled_order(client: GraphQLClient) -> None:
    customer = await new_user(client)
    product = await new_product(client)
    order = (await run(client, "createOrder", customerId=customer, shippingAddress=ADDRESS))[
        "streamId"
    ]
    await run(client, "addLineItem", orderId=order, productId=product, quantity=1)
    await run(client, "placeOrder", orderId=order)
    await run(client, "cancelOrder", orderId=order, reason="changed my mind")
    final = await state(client, order)
    assert (final["status"], final["cancellation_reason"]) == ("CANCELLED", "changed my mind")


async def test_a_post_with_likes_and_comments(client: GraphQLClient) -> None:
    author, fan = await new_user(client), await new_user(client)
    post = (await run(client, "createPost", authorId=author, message="Hello world"))["streamId"]
    await run(client, "likePost", postId=post, userId=fan)
    await run(client, "likePost", postId=post, userId=author)
    await run(client, "unlikePost", postId=post, userId=author)
    added = await run(client, "addComment", postId=post, authorId=fan, text="Nice")
    comment_id = added["events"][0]["data"]["comment_id"]
    await run(client, "editComment", postId=post, commentId=comment_id, text="Very nice")
    second = await run(client, "addComment", postId=post, authorId=author, text="Thanks")
    await run(
        client, "removeComment", postId=post, commentId=second["events"][0]["data"]["comment_id"]
    )
    await run(client, "editPost", postId=post, message="Hello, world")
    final = await state(client, post)
    assert final["liked_by"] == [fan]
    assert [(c["comment_id"], c["text"]) for c in final["comments"]] == [(comment_id, "Very nice")]
    assert final["message"] == "Hello, world"
    await run(client, "deletePost", postId=post)
    assert (await state(client, post))["deleted"] is True


async def test_a_second_sku_in_another_case_is_a_duplicate(
    client: GraphQLClient, db: asyncpg.Connection
) -> None:
    sku = f"sku-{uuid.uuid4().hex[:8]}"
    await run(client, "addProduct", sku=sku, name="A", priceCents=1)
    before = await event_count(db)
    assert (
        await client.code(M["addProduct"], input={"sku": sku.upper(), "name": "B", "priceCents": 1})
        == "DUPLICATE"
    )
    assert await event_count(db) == before


async def test_the_client_cannot_set_the_unit_price(
    client: GraphQLClient, db: asyncpg.Connection
) -> None:
    before = await event_count(db)
    document = M["addLineItem"]
    fields = {"orderId": "o", "productId": "p", "quantity": 1, "unitPriceCents": 1}
    assert await client.code(document, input=fields) == "VALIDATION_FAILED"
    assert await event_count(db) == before


async def test_every_mutation_refuses_bad_input_and_writes_nothing(
    client: GraphQLClient, db: asyncpg.Connection
) -> None:
    customer = await new_user(client)
    product = await new_product(client, stock=5)
    order = (await run(client, "createOrder", customerId=customer, shippingAddress=ADDRESS))[
        "streamId"
    ]
    post = (await run(client, "createPost", authorId=customer, message="Hi"))["streamId"]
    ghost = str(uuid.uuid4())
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("addProduct", {"sku": "", "name": "x", "priceCents": 1}, "VALIDATION_FAILED"),
        ("addProduct", {"sku": "S1", "name": "x", "priceCents": -1}, "VALIDATION_FAILED"),
        (
            "addProduct",
            {"sku": "S2", "name": "x", "priceCents": 1, "initialStock": -1},
            "VALIDATION_FAILED",
        ),
        ("restockProduct", {"productId": product, "quantity": 0}, "VALIDATION_FAILED"),
        ("restockProduct", {"productId": ghost, "quantity": 1}, "NOT_FOUND"),
        (
            "changeProductPrice",
            {"productId": product, "priceCents": 100_000_001},
            "VALIDATION_FAILED",
        ),
        (
            "changeProductPrice",
            {"productId": product, "priceCents": 5, "expectedVersion": 7},
            "CONCURRENCY_CONFLICT",
        ),
        ("createOrder", {"customerId": ghost, "shippingAddress": ADDRESS}, "NOT_FOUND"),
        (
            "createOrder",
            {"customerId": customer, "shippingAddress": {**ADDRESS, "city": " "}},
            "VALIDATION_FAILED",
        ),
        ("addLineItem", {"orderId": order, "productId": ghost, "quantity": 1}, "NOT_FOUND"),
        (
            "addLineItem",
            {"orderId": order, "productId": product, "quantity": 1001},
            "VALIDATION_FAILED",
        ),
        ("addLineItem", {"orderId": ghost, "productId": product, "quantity": 1}, "NOT_FOUND"),
        ("removeLineItem", {"orderId": order, "productId": product}, "RULE_VIOLATED"),
        ("placeOrder", {"orderId": order}, "RULE_VIOLATED"),
        ("payOrder", {"orderId": order, "amountCents": 1, "method": "card"}, "RULE_VIOLATED"),
        (
            "shipOrder",
            {"orderId": order, "carrier": "UPS", "trackingNumber": "1Z"},
            "RULE_VIOLATED",
        ),
        ("deliverOrder", {"orderId": order, "signedBy": "Ann"}, "RULE_VIOLATED"),
        ("cancelOrder", {"orderId": order, "reason": ""}, "VALIDATION_FAILED"),
        ("createPost", {"authorId": customer, "message": ""}, "VALIDATION_FAILED"),
        ("createPost", {"authorId": ghost, "message": "Hi"}, "NOT_FOUND"),
        ("editPost", {"postId": post, "message": "x" * 5001}, "VALIDATION_FAILED"),
        ("deletePost", {"postId": ghost}, "NOT_FOUND"),
        ("likePost", {"postId": post, "userId": ghost}, "NOT_FOUND"),
        ("unlikePost", {"postId": post, "userId": customer}, "RULE_VIOLATED"),
        ("addComment", {"postId": post, "authorId": customer, "text": ""}, "VALIDATION_FAILED"),
        ("editComment", {"postId": post, "commentId": ghost, "text": "x"}, "NOT_FOUND"),
        ("removeComment", {"postId": post, "commentId": ghost}, "NOT_FOUND"),
    ]
    before = await event_count(db)
    for name, fields, code in cases:
        assert await client.code(M[name], input=fields) == code, (name, fields)
    assert await event_count(db) == before
    assert {name for name, _, _ in cases} | {"registerUser"} == set(M)

    # Once a post is liked, a second like by the same user is a rule violation.
    await run(client, "likePost", postId=post, userId=customer)
    before = await event_count(db)
    assert (
        await client.code(M["likePost"], input={"postId": post, "userId": customer})
        == "RULE_VIOLATED"
    )
    # A confirmed order is paid only its exact total, and does not ship before it is paid.
    await run(client, "addLineItem", orderId=order, productId=product, quantity=1)
    assert (await place(client, order))["fulfilment"]["status"] == "CONFIRMED"
    before = await event_count(db)
    assert (
        await client.code(
            M["payOrder"], input={"orderId": order, "amountCents": 1, "method": "card"}
        )
        == "RULE_VIOLATED"
    )
    assert (
        await client.code(
            M["shipOrder"], input={"orderId": order, "carrier": "", "trackingNumber": ""}
        )
        == "RULE_VIOLATED"
    )
    assert await event_count(db) == before
