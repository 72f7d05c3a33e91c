"""The reviews read model: each review, and each product's rating (count and sum)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_never

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.reviews import DECIDER as reviews_decider
from domain.reviews import Event, ProductReviewed
from projections.projector import Envelope, Tables, narrowed, type_names

# The read model follows every event of its aggregate: the decider's list, not a copy of it.
HANDLED: tuple[type[Any], ...] = tuple(reviews_decider.event_types)


class ReviewsProjector:
    """`reviews_view` and `product_ratings`, both its own. A batch's reviews go in with one
    statement, and only the rows it inserted count towards their product's rating: a review
    applied again (a replay) inserts nothing and so counts nothing."""

    name = "reviews"
    tables: tuple[str, ...] = ("reviews_view", "product_ratings")
    handles = HANDLED
    event_types = type_names(HANDLED)

    async def apply(
        self, connection: AsyncConnection, events: Sequence[Envelope[Event]], tables: Tables
    ) -> None:
        reviewed: list[Envelope[ProductReviewed]] = []
        for envelope in events:
            match envelope.event:
                case ProductReviewed() as event:
                    reviewed.append(narrowed(envelope, event))
                case other:
                    assert_never(other)
        if not reviewed:
            return
        await connection.execute(
            text(
                f"WITH inserted AS (INSERT INTO {tables['reviews_view']} (id, product_id, "
                "user_id, rating, text, version, created_at, updated_at) "
                "SELECT r.id, r.product_id, r.user_id, r.rating, r.text, r.version, r.at, r.at "
                "FROM unnest(CAST(:ids AS text[]), CAST(:products AS text[]), "
                "CAST(:users AS text[]), CAST(:ratings AS smallint[]), CAST(:texts AS text[]), "
                "CAST(:versions AS integer[]), CAST(:ats AS timestamptz[])) "
                "AS r(id, product_id, user_id, rating, text, version, at) "
                "ON CONFLICT (id) DO NOTHING RETURNING product_id, rating) "
                f"INSERT INTO {tables['product_ratings']} AS p (product_id, review_count, "
                "rating_sum) SELECT product_id, count(*), sum(rating) FROM inserted "
                "GROUP BY product_id ON CONFLICT (product_id) DO UPDATE SET "
                "review_count = p.review_count + excluded.review_count, "
                "rating_sum = p.rating_sum + excluded.rating_sum"
            ),
            {
                "ids": [e.stream_id for e in reviewed],
                "products": [e.event.product_id for e in reviewed],
                "users": [e.event.user_id for e in reviewed],
                "ratings": [e.event.rating for e in reviewed],
                "texts": [e.event.text for e in reviewed],
                "versions": [e.version for e in reviewed],
                "ats": [e.recorded_at for e in reviewed],
            },
        )
