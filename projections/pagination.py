"""Keyset pagination with opaque cursors, shared by every list query."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

MAX_PAGE_SIZE = 100


class InvalidPage(ValueError):
    """A malformed cursor or a page size out of range."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[tuple[str, T]]
    """Each item with its cursor."""
    total_count: int
    has_next_page: bool

    @property
    def end_cursor(self) -> str | None:
        return self.items[-1][0] if self.items else None


def encode_cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise InvalidPage(f"malformed cursor {cursor!r}") from error
    if not isinstance(key, list) or len(key) != arity:
        raise InvalidPage(f"malformed cursor {cursor!r}")
    return key


_WORD = re.compile(r"\w+", re.UNICODE)


def prefix_query(search: str) -> str | None:
    """`ada love` as the tsquery `ada:* & love:*`: every word, as a prefix."""
    words = _WORD.findall(search.lower())
    return " & ".join(f"{word}:*" for word in words) or None


def check_page_size(first: int) -> None:
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidPage(f"first must be between 1 and {MAX_PAGE_SIZE}, got {first}")


async def keyset_page(
    engine: AsyncEngine,
    *,
    table: str,
    columns: str,
    where: Sequence[str],
    params: dict[str, Any],
    first: int,
    after: str | None,
    make: Callable[[Any], T],
) -> Page[T]:
    """A page of `table` in (created_at, id) order, with the total count of matching rows."""
    check_page_size(first)
    condition = " AND ".join(where) or "TRUE"
    page_condition = condition
    params = {**params, "limit": first + 1}
    if after is not None:
        created_at, last_id = decode_cursor(after, 2)
        try:
            params["after_at"] = datetime.fromisoformat(created_at)
        except (TypeError, ValueError) as error:
            raise InvalidPage(f"malformed cursor {after!r}") from error
        params["after_id"] = str(last_id)
        page_condition += " AND (created_at, id) > (:after_at, :after_id)"
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    f"SELECT {columns} FROM {table} WHERE {page_condition} "
                    "ORDER BY created_at, id LIMIT :limit"
                ),
                params,
            )
        ).all()
        total = (
            await connection.execute(
                text(f"SELECT count(*) FROM {table} WHERE {condition}"), params
            )
        ).scalar_one()
    return Page(
        items=[
            (encode_cursor(row.created_at.isoformat(), row.id), make(row)) for row in rows[:first]
        ],
        total_count=total,
        has_next_page=len(rows) > first,
    )
