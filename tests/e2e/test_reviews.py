"""Product reviews end to end: reviewProduct over HTTP, one review per user and product, the
reviews of a product in Relay pages, and Product.rating, reading their own writes."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import asyncpg

from tests.e2e.conftest import GraphQLClient
from tests.e2e.test_commands import new_product, new_user, run

REVIEW = """mutation($input: ReviewProductInput!) {
  reviewProduct(input: $input) { streamId version position replayed events { type data } }
}"""
REVIEWS = """query($product: ID!, $first: Int, $after: String, $min: Position) {
  reviews(productId: $product, first: $first, after: $after, minPosition: $min) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id productId userId rating text version user { id name } } }
  }
}"""
RATING = """query($id: ID!, $min: Position) {
  product(id: $id, minPosition: $min) { id rating { average count } }
}"""
RATINGS = """query($min: Position, $first: Int) {
  products(minPosition: $min, first: $first) { edges { node { id rating { average count } } } }
}"""


async def review(client: GraphQLClient, **fields: Any) -> dict[str, Any]:
    return dict((await client.execute(REVIEW, input=fields))["reviewProduct"])


async def review_count(db: asyncpg.Connection, product: str) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM events WHERE event_type = 'ProductReviewed' "
            "AND data->>'product_id' = $1",
            product,
        )
    )


async def test_reviews_are_paged_and_rated(client: GraphQLClient) -> None:
    added = await run(
        client, "addProduct", sku=f"R-{uuid.uuid4().hex[:8]}", name="Lamp", priceCents=1
    )
    product = added["streamId"]
    unrated = await client.execute(RATING, id=product, min=added["position"])
    assert unrated["product"]["rating"] == {
        "average": None,
        "count": 0,
    }
    reviewers = [await new_user(client) for _ in range(3)]
    results = [
        await review(client, productId=product, userId=user, rating=rating, text=f" {rating} ")
        for user, rating in zip(reviewers, [5, 4, 2], strict=True)
    ]
    assert results[0]["events"] == [
        {
            "type": "ProductReviewed",
            "data": {
                "review_id": results[0]["streamId"],
                "product_id": product,
                "user_id": reviewers[0],
                "rating": 5,
                "text": "5",
                "user_subject": None,  # open mode: the reviewer is bound to no subject
            },
        }
    ]
    last = results[-1]["position"]
    rated = (await client.execute(RATING, id=product, min=last))["product"]["rating"]
    assert rated == {"average": 11 / 3, "count": 3}

    first = (await client.execute(REVIEWS, product=product, first=2, min=last))["reviews"]
    assert first["totalCount"] == 3 and first["pageInfo"]["hasNextPage"] is True
    rest = (await client.execute(REVIEWS, product=product, after=first["pageInfo"]["endCursor"]))[
        "reviews"
    ]
    assert rest["pageInfo"] == {"hasNextPage": False, "endCursor": rest["edges"][-1]["cursor"]}
    nodes = [edge["node"] for edge in first["edges"] + rest["edges"]]
    assert [(n["userId"], n["rating"], n["text"]) for n in nodes] == [
        (reviewers[0], 5, "5"),
        (reviewers[1], 4, "4"),
        (reviewers[2], 2, "2"),
    ]
    assert [n["id"] for n in nodes] == [r["streamId"] for r in results]
    assert all(n["user"]["id"] == n["userId"] and n["version"] == 1 for n in nodes)
    assert all(n["productId"] == product for n in nodes)


async def test_a_second_review_of_a_pair_is_a_duplicate_and_a_retry_replays(
    client: GraphQLClient, db: asyncpg.Connection
) -> None:
    product, user = await new_product(client), await new_user(client)
    command_id = f"review-{uuid.uuid4()}"
    fields = {"productId": product, "userId": user, "rating": 3, "text": "Fine"}
    first = await review(client, **fields, commandId=command_id)
    again = await review(client, **fields, commandId=command_id)
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert {**again, "replayed": False} == first
    for changed in ({}, {"rating": 1, "text": "Worse"}, {"commandId": f"other-{uuid.uuid4()}"}):
        error = await client.error(REVIEW, input={**fields, **changed})
        assert error["extensions"]["code"] == "DUPLICATE", error
        assert "already reviewed" in error["message"]
    assert await review_count(db, product) == 1
    # The same user reviews another product, and another user this one: both fine.
    await review(client, **{**fields, "productId": await new_product(client)})
    await review(client, **{**fields, "userId": await new_user(client)})
    assert await review_count(db, product) == 2


async def test_bad_reviews_are_refused_and_write_nothing(
    client: GraphQLClient, db: asyncpg.Connection
) -> None:
    product, user = await new_product(client), await new_user(client)
    ghost = str(uuid.uuid4())
    good = {"productId": product, "userId": user, "rating": 4, "text": "Good"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"rating": 0}, "VALIDATION_FAILED"),
        ({"rating": 6}, "VALIDATION_FAILED"),
        ({"rating": -1}, "VALIDATION_FAILED"),
        ({"rating": 2**31 - 1}, "VALIDATION_FAILED"),
        ({"rating": -(2**31)}, "VALIDATION_FAILED"),
        ({"text": ""}, "VALIDATION_FAILED"),
        ({"text": " \n\t "}, "VALIDATION_FAILED"),
        ({"text": "x" * 2001}, "VALIDATION_FAILED"),
        ({"text": "nul \x00 byte"}, "VALIDATION_FAILED"),
        ({"productId": ghost}, "NOT_FOUND"),
        ({"userId": ghost}, "NOT_FOUND"),
        ({"productId": user}, "NOT_FOUND"),  # a user's id is no product's
        ({"userId": product}, "NOT_FOUND"),
        ({"productId": ""}, "NOT_FOUND"),
        ({"commandId": ""}, "VALIDATION_FAILED"),
    ]
    before = int(await db.fetchval("SELECT count(*) FROM events"))
    for changed, code in cases:
        error = await client.error(REVIEW, input={**good, **changed})
        assert error["extensions"]["code"] == code, (changed, error)
    # Beyond GraphQL's Int, the variable itself is refused.
    error = await client.error(REVIEW, input={**good, "rating": 2**31})
    assert error["extensions"]["code"] == "VALIDATION_FAILED", error
    assert int(await db.fetchval("SELECT count(*) FROM events")) == before
    # The longest text goes in whole.
    written = await review(client, **{**good, "text": "é" * 2000})
    assert written["events"][0]["data"]["text"] == "é" * 2000


async def test_bad_pages_of_reviews_are_refused(client: GraphQLClient) -> None:
    product = await new_product(client)
    for variables in ({"first": 0}, {"first": 101}, {"after": "not a cursor"}):
        error = await client.error(REVIEWS, product=product, **variables)
        assert error["extensions"]["code"] == "VALIDATION_FAILED", (variables, error)
    empty = (await client.execute(REVIEWS, product=str(uuid.uuid4())))["reviews"]
    assert empty == {
        "totalCount": 0,
        "pageInfo": {"hasNextPage": False, "endCursor": None},
        "edges": [],
    }


async def test_concurrent_reviews_rate_as_the_log_says(
    client: GraphQLClient, db: asyncpg.Connection
) -> None:
    """A seeded crowd reviews three products at once, each pair sent two or three times with
    different ratings: every product's rating is what its recorded reviews say."""
    rng = random.Random(20261203)
    products = [await new_product(client) for _ in range(3)]
    users = [await new_user(client) for _ in range(6)]
    sends = [
        {"productId": p, "userId": u, "rating": rng.randint(1, 5), "text": "Crowd"}
        for p in products
        for u in users
        if rng.random() < 0.7
        for _ in range(rng.randint(2, 3))
    ]
    rng.shuffle(sends)
    outcomes = await asyncio.gather(
        *(client.execute(REVIEW, input=fields) for fields in sends), return_exceptions=True
    )
    accepted = [
        (fields, outcome["reviewProduct"])
        for fields, outcome in zip(sends, outcomes, strict=True)
        if isinstance(outcome, dict)
    ]
    pairs = {(f["productId"], f["userId"]) for f in sends}
    assert sorted((f["productId"], f["userId"]) for f, _ in accepted) == sorted(pairs)
    refused = [o for o in outcomes if not isinstance(o, dict)]
    assert len(refused) == len(sends) - len(pairs) > 0
    assert all(error.errors[0]["extensions"]["code"] == "DUPLICATE" for error in refused)  # type: ignore[attr-defined]

    truth = {
        p: [
            row["rating"]
            for row in await db.fetch(
                "SELECT (data->>'rating')::int AS rating FROM events "
                "WHERE event_type = 'ProductReviewed' AND data->>'product_id' = $1",
                p,
            )
        ]
        for p in products
    }
    last = max(int(result["position"]) for _, result in accepted)
    for product in products:
        rating = (await client.execute(RATING, id=product, min=str(last)))["product"]["rating"]
        ratings = truth[product]
        expected = {
            "average": sum(ratings) / len(ratings) if ratings else None,
            "count": len(ratings),
        }
        assert rating == expected
    # The list reads every rating in one query per page (a DataLoader), and agrees.
    listed = (await client.execute(RATINGS, min=str(last), first=100))["products"]["edges"]
    by_id = {edge["node"]["id"]: edge["node"]["rating"] for edge in listed}
    assert all(by_id[p]["count"] == len(truth[p]) for p in products if p in by_id)
