"""Queries of the users read models, for the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.pagination import Page, keyset_page, prefix_query

_COLUMNS = "id, email, name, age, age_group, version, created_at, updated_at"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRow:
    id: str
    email: str
    name: str
    age: int
    age_group: str
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class UserSummaryRow:
    total_users: int
    average_age: float | None
    by_age_group: dict[str, int]


def _row(row: Any) -> UserRow:
    return UserRow(**row._mapping)


async def get_users(engine: AsyncEngine, ids: list[str]) -> dict[str, UserRow]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(f"SELECT {_COLUMNS} FROM users_view WHERE id = ANY(CAST(:ids AS text[]))"),
            {"ids": ids},
        )
        return {row.id: _row(row) for row in rows}


NAME_WEIGHT = "A"
"""The weight of name words in `users_view.search` (email words are B): see migration 0008."""


async def list_users(
    engine: AsyncEngine,
    *,
    first: int,
    after: str | None = None,
    search: str | None = None,
    search_emails: bool = True,
    min_age: int | None = None,
    max_age: int | None = None,
    age_group: str | None = None,
) -> Page[UserRow]:
    """Users in registration order, filtered; `search` matches words of the name, and of the
    email when `search_emails` (for callers who may read email addresses)."""
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if search is not None:
        query = prefix_query(search, weights="" if search_emails else NAME_WEIGHT)
        if query is None:
            return Page(items=[], total_count=0, has_next_page=False)
        conditions.append("search @@ to_tsquery('simple', :query)")
        params["query"] = query
    if min_age is not None:
        conditions.append("age >= :min_age")
        params["min_age"] = min_age
    if max_age is not None:
        conditions.append("age <= :max_age")
        params["max_age"] = max_age
    if age_group is not None:
        conditions.append("age_group = :age_group")
        params["age_group"] = age_group
    return await keyset_page(
        engine,
        table="users_view",
        columns=_COLUMNS,
        where=conditions,
        params=params,
        first=first,
        after=after,
        make=_row,
    )


async def user_summary(engine: AsyncEngine) -> UserSummaryRow:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT total_users, age_sum, teen, adult, senior FROM user_summary")
            )
        ).first()
    if row is None or row.total_users == 0:
        return UserSummaryRow(
            total_users=0, average_age=None, by_age_group={"TEEN": 0, "ADULT": 0, "SENIOR": 0}
        )
    return UserSummaryRow(
        total_users=row.total_users,
        average_age=row.age_sum / row.total_users,
        by_age_group={"TEEN": row.teen, "ADULT": row.adult, "SENIOR": row.senior},
    )
