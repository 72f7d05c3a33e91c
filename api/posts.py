"""Posts, the read side: the type of the posts view and its queries (the commands are in
api/post_commands.py)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.connection import Connection
from api.context import Info
from api.reads import also_caught_up, caught_up, page_errors
from api.rows import from_row
from api.scalars import Position
from api.unset import optional
from api.users import User
from projections import post_queries
from projections.post_queries import PostRow


@strawberry.type
class Comment:
    id: strawberry.ID
    author_id: strawberry.ID
    text: str
    created_at: datetime
    updated_at: datetime

    @strawberry.field
    async def author(self, info: Info) -> User | None:
        await also_caught_up(info, "users")
        row = await info.context.loaders.user.load(str(self.author_id))
        return None if row is None else User.of(row)


@strawberry.type
class Post:
    id: strawberry.ID
    author_id: strawberry.ID
    message: str
    like_count: int
    liked_by: list[strawberry.ID]
    comments: list[Comment]
    version: int
    created_at: datetime
    updated_at: datetime

    @strawberry.field
    async def author(self, info: Info) -> User | None:
        await also_caught_up(info, "users")
        row = await info.context.loaders.user.load(str(self.author_id))
        return None if row is None else User.of(row)

    @classmethod
    def of(cls, row: PostRow) -> Post:
        return from_row(
            cls,
            row,
            like_count=len(row.liked_by),
            liked_by=list(row.liked_by),
            comments=[from_row(Comment, c, id=c.comment_id) for c in row.comments],
        )


@strawberry.type
class PostQueries:
    @strawberry.field
    async def post(
        self, info: Info, id: strawberry.ID, min_position: Position | None = strawberry.UNSET
    ) -> Post | None:
        await caught_up(info, "posts", min_position)
        row = await post_queries.get_post(info.context.services.engine, str(id))
        return None if row is None else Post.of(row)

    @strawberry.field
    async def posts(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
        author_id: strawberry.ID | None = strawberry.UNSET,
        min_position: Position | None = strawberry.UNSET,
    ) -> Connection[Post]:
        await caught_up(info, "posts", min_position)
        with page_errors():
            page = await post_queries.list_posts(
                info.context.services.engine,
                first=20 if first is None else first,
                after=optional(after),
                author_id=optional(author_id),
            )
        return Connection.of(page, Post.of)
