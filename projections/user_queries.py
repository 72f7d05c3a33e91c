"""Queries of the users read models, for the API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.pagination import (
    InvalidPage,
    Page,
    check_page_size,
    decode_cursor,
    encode_cursor,
)

_COLUMNS = "id, email, name, age, age_group, version, created_at, updated_at"
_WORD = re.compile(r"[\w]+", re.UNICODE)


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


def prefix_query(search: str) -> str | None:
    """`ada love` as the tsquery `ada:* & love:*`: every word, as a prefix."""
    words = _WORD.findall(search.lower())
    return " & ".join(f"{word}:*" for word in words) or None


async def get_users(engine: AsyncEngine, ids: list[str]) -> dict[str, UserRow]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(f"SELECT {_COLUMNS} FROM users_view WHERE id = ANY(CAST(:ids AS text[]))"),
            {"ids": ids},
        )
        return {row.id: _row(row) for row in rows}


async def list_users(
    engine: AsyncEngine,
    *,
    first: int,
    after: str | None = None,
    search: str | None = None,
    min_age: int | None = None,
    max_age: int | None = None,
    age_group: str | None = None,
) -> Page[UserRow]:
    """Users in registration order, filtered; `search` matches words of name and email."""
    check_page_size(first)
    conditions = ["TRUE"]
    params: dict[str, Any] = {"limit": first + 1}
    if search is not None:
        query = prefix_query(search)
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
    where = " AND ".join(conditions)
    page_where = where
    if after is not None:
        created_at, last_id = decode_cursor(after, 2)
        try:
            params["after_at"] = datetime.fromisoformat(created_at)
        except (TypeError, ValueError) as error:
            raise InvalidPage(f"malformed cursor {after!r}") from error
        params["after_id"] = str(last_id)
        page_where += " AND (created_at, id) > (:after_at, :after_id)"
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    f"SELECT {_COLUMNS} FROM users_view WHERE {page_where} "
                    "ORDER BY created_at, id LIMIT :limit"
                ),
                params,
            )
        ).all()
        total = (
            await connection.execute(text(f"SELECT count(*) FROM users_view WHERE {where}"), params)
        ).scalar_one()
    users = [_row(row) for row in rows[:first]]
    return Page(
        items=[(encode_cursor(u.created_at.isoformat(), u.id), u) for u in users],
        total_count=total,
        has_next_page=len(rows) > first,
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
