"""Keyset pagination with opaque cursors, shared by every list query."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.text import unstorable
from projections.errors import InvalidPage, InvalidSearch

T = TypeVar("T")

MAX_PAGE_SIZE = 100


MAX_SEARCH_LENGTH = 200
"""Characters of a search text: a search is a few words typed by a person."""
MAX_SEARCH_WORDS = 10
"""Words of a search text; each is one operand of the tsquery, so this bounds its depth too."""
MAX_CURSOR_LENGTH = 512
"""Characters of a cursor: ours are under 150; anything much longer was not made by us."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[tuple[str, T]]
    """Each item with its cursor."""
    total_count: int
    has_next_page: bool

    @property
    def end_cursor(self) -> str | None:
        return self.items[-1][0] if self.items else None


def encode_cursor(created_at: datetime, row_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at.isoformat(), row_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) key a cursor of `encode_cursor` holds.

    Cursors are opaque: anything but exactly what `encode_cursor` makes (other types, nesting,
    dates PostgreSQL or Python cannot hold, stray characters) is an InvalidPage, never
    another exception.
    """
    key = _cursor_key(cursor)
    if (
        not isinstance(key, list)
        or len(key) != 2
        or not all(isinstance(part, str) for part in key)
        or unstorable(key[1]) is not None
    ):
        raise InvalidPage("invalid cursor")
    text, row_id = key
    try:
        created_at = datetime.fromisoformat(text)
        # asyncpg sends UTC: an instant that is not a UTC datetime cannot be a row's key
        created_at.astimezone(UTC)
    except (ValueError, OverflowError) as error:
        raise InvalidPage("invalid cursor") from error
    if created_at.tzinfo is None or encode_cursor(created_at, row_id) != cursor:
        raise InvalidPage("invalid cursor")
    return created_at, row_id


def _cursor_key(cursor: str) -> Any:
    if len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
        raise InvalidPage("invalid cursor")
    try:
        return json.loads(base64.b64decode(cursor, altchars=b"-_", validate=True))
    except (binascii.Error, ValueError, RecursionError) as error:
        raise InvalidPage("invalid cursor") from error


_WORD = re.compile(r"[^\W_]+")
"""A run of letters and digits: the characters tsquery and tsvector parse as a word."""


def prefix_query(search: str, *, weights: str = "") -> str | None:
    """`ada love` as the tsquery `ada:* & love:*`: every word, as a prefix (of a lexeme of
    these `weights` only, when given: `ada:*A`).

    A search text of more than MAX_SEARCH_LENGTH characters or MAX_SEARCH_WORDS words is an
    InvalidSearch: a long conjunction is a deep tsquery (PostgreSQL's stack depth limit at
    some 18,000 words), and no one types one.
    """
    if len(search) > MAX_SEARCH_LENGTH:
        raise InvalidSearch(f"search must be at most {MAX_SEARCH_LENGTH} characters")
    words = _WORD.findall(search.lower())
    if len(words) > MAX_SEARCH_WORDS:
        raise InvalidSearch(f"search must be at most {MAX_SEARCH_WORDS} words")
    return " & ".join(f"{word}:*{weights}" for word in words) or None


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
        params["after_at"], params["after_id"] = decode_cursor(after)
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
        items=[(encode_cursor(row.created_at, row.id), make(row)) for row in rows[:first]],
        total_count=total,
        has_next_page=len(rows) > first,
    )
