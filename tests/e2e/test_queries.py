"""Product, order and post queries end to end, reading their own writes with minPosition."""

from __future__ import annotations

import uuid

from tests.e2e.conftest import GraphQLClient
from tests.e2e.test_commands import ADDRESS, new_product, new_user, place, run

PRODUCT = "query($id: ID!, $min: Position) { product(id: $id, minPosition: $min) { id sku name priceCents stockOnHand stockReserved stockAvailable version } }"
PRODUCTS = "query($search: String, $inStock: Boolean, $first: Int, $after: String, $min: Position) { products(search: $search, inStock: $inStock, first: $first, after: $after, minPosition: $min) { totalCount pageInfo { hasNextPage endCursor } edges { node { sku stockAvailable } } } }"
ORDER = """query($id: ID!, $min: Position) { order(id: $id, minPosition: $min) {
  id customerId status totalCents paidCents carrier trackingNumber signedBy rejectionReason cancellationReason version createdAt updatedAt
  customer { id name }
  shippingAddress { line1 line2 city postalCode country }
  items { productId sku name quantity unitPriceCents lineTotalCents product { id priceCents } }
} }"""
ORDERS = "query($customer: ID, $status: OrderStatus, $min: Position) { orders(customerId: $customer, status: $status, minPosition: $min) { totalCount edges { node { id status totalCents customer { id } } } } }"
POST = "query($id: ID!, $min: Position) { post(id: $id, minPosition: $min) { id authorId message likeCount likedBy version author { id name } comments { id authorId text author { name } } } }"
POSTS = "query($author: ID, $min: Position) { posts(authorId: $author, minPosition: $min) { totalCount edges { node { id likeCount } } } }"
REBUILD = "mutation($name: String!) { rebuildProjection(name: $name) { name status position } }"


async def test_products_are_queried_by_search_and_stock(client: GraphQLClient) -> None:
    tag = uuid.uuid4().hex[:8]
    lamp = await run(
        client, "addProduct", sku=f"LAMP-{tag}", name=f"Lamp {tag}", priceCents=1500, initialStock=3
    )
    empty = await run(client, "addProduct", sku=f"VASE-{tag}", name=f"Vase {tag}", priceCents=900)
    restocked = await run(client, "restockProduct", productId=lamp["streamId"], quantity=2)
    product = (await client.execute(PRODUCT, id=lamp["streamId"], min=restocked["position"]))[
        "product"
    ]
    assert (
        product["stockOnHand"],
        product["stockReserved"],
        product["stockAvailable"],
        product["version"],
    ) == (5, 0, 5, 2)
    found = (await client.execute(PRODUCTS, search=tag, min=empty["position"]))["products"]
    assert found["totalCount"] == 2
    in_stock = (await client.execute(PRODUCTS, search=tag, inStock=True))["products"]
    assert [e["node"]["sku"] for e in in_stock["edges"]] == [f"LAMP-{tag}"]
    by_sku = (await client.execute(PRODUCTS, search=f"vase-{tag}"))["products"]
    assert by_sku["totalCount"] == 1


async def test_an_order_reads_with_its_customer_lines_and_products(client: GraphQLClient) -> None:
    customer = await new_user(client)
    lamp = await new_product(client, 1500)
    order = (
        await run(
            client,
            "createOrder",
            customerId=customer,
            shippingAddress={**ADDRESS, "line2": "Apt 4"},
        )
    )["streamId"]
    await run(client, "addLineItem", orderId=order, productId=lamp, quantity=2)
    placed = await place(client, order)
    read = (await client.execute(ORDER, id=order, min=placed["position"]))["order"]
    assert (read["status"], read["totalCents"], read["version"]) == ("CONFIRMED", 3000, 4)
    assert read["customer"]["id"] == customer
    assert read["shippingAddress"]["line2"] == "Apt 4"
    (item,) = read["items"]
    assert (item["quantity"], item["unitPriceCents"], item["lineTotalCents"]) == (2, 1500, 3000)
    assert item["product"] == {"id": lamp, "priceCents": 1500}
    mine = (await client.execute(ORDERS, customer=customer, min=placed["position"]))["orders"]
    assert [e["node"]["id"] for e in mine["edges"]] == [order]
    cancelled = await run(client, "cancelOrder", orderId=order, reason="no longer needed")
    by_status = (
        await client.execute(
            ORDERS, customer=customer, status="CANCELLED", min=cancelled["position"]
        )
    )["orders"]
    assert by_status["totalCount"] == 1
    assert (await client.execute(ORDERS, customer=customer, status="PLACED"))["orders"][
        "totalCount"
    ] == 0


async def test_a_post_reads_with_likes_comments_and_authors(client: GraphQLClient) -> None:
    author, fan = await new_user(client), await new_user(client)
    post = (await run(client, "createPost", authorId=author, message="Hello"))["streamId"]
    await run(client, "likePost", postId=post, userId=fan)
    commented = await run(client, "addComment", postId=post, authorId=fan, text="Nice")
    read = (await client.execute(POST, id=post, min=commented["position"]))["post"]
    assert (read["likeCount"], read["likedBy"], read["author"]["id"]) == (1, [fan], author)
    assert [(c["authorId"], c["text"], c["author"]["name"]) for c in read["comments"]] == [
        (fan, "Nice", "Buyer")
    ]
    listed = (await client.execute(POSTS, author=author, min=commented["position"]))["posts"]
    assert [(e["node"]["id"], e["node"]["likeCount"]) for e in listed["edges"]] == [(post, 1)]
    deleted = await run(client, "deletePost", postId=post)
    assert (await client.execute(POST, id=post, min=deleted["position"]))["post"] is None


async def test_rebuild_projection_through_graphql(client: GraphQLClient) -> None:
    product = await run(
        client, "addProduct", sku=f"R-{uuid.uuid4().hex[:8]}", name="R", priceCents=1
    )
    status = (await client.execute(REBUILD, name="products"))["rebuildProjection"]
    assert status["name"] == "products"
    assert status["status"] in {"rebuilding", "running"}
    # The rebuilt table still answers, with the product in it.
    read = (await client.execute(PRODUCT, id=product["streamId"], min=product["position"]))[
        "product"
    ]
    assert read["version"] == 1
    assert await client.code(REBUILD, name="nope") == "NOT_FOUND"
    assert await client.code(REBUILD, name="fulfilment") == "VALIDATION_FAILED"
    listed = (await client.execute("{ projections { name status } }"))["projections"]
    assert {"name": "fulfilment", "status": "running"} in listed


async def test_bad_list_arguments_are_validation_errors(client: GraphQLClient) -> None:
    assert await client.code(PRODUCTS, first=101) == "VALIDATION_FAILED"
    assert await client.code(PRODUCTS, after="%%%") == "VALIDATION_FAILED"
    assert await client.code(ORDERS, status="LOST") == "VALIDATION_FAILED"
    assert await client.code(POSTS, min="-5") == "VALIDATION_FAILED"
