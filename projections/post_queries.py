"""Queries of the posts read model, for the API."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.pagination import Page, keyset_page

_COLUMNS = "id, author_id, message, liked_by, version, created_at, updated_at"


@dataclass(frozen=True, slots=True, kw_only=True)
class CommentRow:
    comment_id: str
    author_id: str
    text: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PostRow:
    id: str
    author_id: str
    message: str
    liked_by: list[str]
    version: int
    created_at: datetime
    updated_at: datetime
    comments: list[CommentRow] = field(default_factory=list)


def _row(row: Any) -> PostRow:
    return PostRow(**row._mapping)


async def _with_comments(engine: AsyncEngine, posts: list[PostRow]) -> list[PostRow]:
    if not posts:
        return posts
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT post_id, comment_id, author_id, text, created_at, updated_at "
                "FROM post_comments_view WHERE post_id = ANY(CAST(:ids AS text[])) "
                "ORDER BY post_id, created_at, comment_id"
            ),
            {"ids": [p.id for p in posts]},
        )
        comments: dict[str, list[CommentRow]] = defaultdict(list)
        for row in rows:
            values = dict(row._mapping)
            comments[values.pop("post_id")].append(CommentRow(**values))
    for post in posts:
        post.comments.extend(comments.get(post.id, []))
    return posts


async def get_post(engine: AsyncEngine, post_id: str) -> PostRow | None:
    """A post that is not deleted (a deleted post reads as absent; its history remains)."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(f"SELECT {_COLUMNS} FROM posts_view WHERE id = :id AND NOT deleted"),
                {"id": post_id},
            )
        ).first()
    if row is None:
        return None
    (post,) = await _with_comments(engine, [_row(row)])
    return post


async def list_posts(
    engine: AsyncEngine, *, first: int, after: str | None = None, author_id: str | None = None
) -> Page[PostRow]:
    conditions = ["NOT deleted"]
    params: dict[str, Any] = {}
    if author_id is not None:
        conditions.append("author_id = :author_id")
        params["author_id"] = author_id
    page = await keyset_page(
        engine,
        table="posts_view",
        columns=_COLUMNS,
        where=conditions,
        params=params,
        first=first,
        after=after,
        make=_row,
    )
    await _with_comments(engine, [post for _, post in page.items])
    return page
