"""Queries of the reviews read model, for the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.pagination import Page, keyset_page

_COLUMNS = "id, product_id, user_id, rating, text, version, created_at, updated_at"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewRow:
    id: str
    product_id: str
    user_id: str
    rating: int
    text: str
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RatingRow:
    """A product's reviews in sum: none yet is a count of 0 and no average."""

    count: int = 0
    rating_sum: int = 0

    @property
    def average(self) -> float | None:
        return self.rating_sum / self.count if self.count else None


def _row(row: Any) -> ReviewRow:
    return ReviewRow(**row._mapping)


async def list_reviews(
    engine: AsyncEngine, *, product_id: str, first: int, after: str | None = None
) -> Page[ReviewRow]:
    """A product's reviews, oldest first."""
    return await keyset_page(
        engine,
        table="reviews_view",
        columns=_COLUMNS,
        where=["product_id = :product_id"],
        params={"product_id": product_id},
        first=first,
        after=after,
        make=_row,
    )


async def get_ratings(engine: AsyncEngine, product_ids: list[str]) -> dict[str, RatingRow]:
    """The rating of each of `product_ids` that has a review."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT product_id, review_count, rating_sum FROM product_ratings "
                "WHERE product_id = ANY(CAST(:ids AS text[]))"
            ),
            {"ids": product_ids},
        )
        return {
            row.product_id: RatingRow(count=row.review_count, rating_sum=row.rating_sum)
            for row in rows
        }
