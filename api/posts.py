"""Posts: mutations to commands of domain/posts.py, queries to the posts view."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry

from api.command_input import CommandInput, VersionedCommandInput
from api.commands import execute, new_stream_id, optional
from api.connection import Connection
from api.context import Info
from api.lookups import user_exists
from api.reads import caught_up, page_errors
from api.rows import from_row
from api.scalars import Position
from api.types import CommandResult
from api.users import User
from domain import posts
from projections import post_queries
from projections.post_queries import PostRow


@strawberry.input
class CreatePostInput(CommandInput):
    author_id: strawberry.ID
    message: str


@strawberry.input
class EditPostInput(VersionedCommandInput):
    post_id: strawberry.ID
    message: str


@strawberry.input
class DeletePostInput(VersionedCommandInput):
    post_id: strawberry.ID


@strawberry.input
class LikePostInput(CommandInput):
    post_id: strawberry.ID
    user_id: strawberry.ID


@strawberry.input
class UnlikePostInput(CommandInput):
    post_id: strawberry.ID
    user_id: strawberry.ID


@strawberry.input
class AddCommentInput(CommandInput):
    post_id: strawberry.ID
    author_id: strawberry.ID
    text: str


@strawberry.input
class EditCommentInput(VersionedCommandInput):
    post_id: strawberry.ID
    comment_id: strawberry.ID
    text: str


@strawberry.input
class RemoveCommentInput(VersionedCommandInput):
    post_id: strawberry.ID
    comment_id: strawberry.ID


async def _on_post(info: Info, input: Any, command: posts.Command) -> CommandResult:
    return await execute(
        info,
        posts.DECIDER,
        str(input.post_id),
        command,
        expected_version=getattr(input, "expected_version", None),
        command_id=input.command_id,
        request=input,
    )


@strawberry.type
class PostMutations:
    @strawberry.mutation
    async def create_post(self, info: Info, input: CreatePostInput) -> CommandResult:
        post_id = new_stream_id("post", input.command_id)
        command = posts.CreatePost(
            post_id=post_id,
            author_id=input.author_id,
            author_exists=await user_exists(info, str(input.author_id)),
            message=input.message,
        )
        return await execute(
            info, posts.DECIDER, post_id, command, command_id=input.command_id, request=input
        )

    @strawberry.mutation
    async def edit_post(self, info: Info, input: EditPostInput) -> CommandResult:
        return await _on_post(
            info, input, posts.EditPost(post_id=input.post_id, message=input.message)
        )

    @strawberry.mutation
    async def delete_post(self, info: Info, input: DeletePostInput) -> CommandResult:
        return await _on_post(info, input, posts.DeletePost(post_id=input.post_id))

    @strawberry.mutation
    async def like_post(self, info: Info, input: LikePostInput) -> CommandResult:
        command = posts.LikePost(
            post_id=input.post_id,
            user_id=input.user_id,
            user_exists=await user_exists(info, str(input.user_id)),
        )
        return await _on_post(info, input, command)

    @strawberry.mutation
    async def unlike_post(self, info: Info, input: UnlikePostInput) -> CommandResult:
        command = posts.UnlikePost(post_id=input.post_id, user_id=input.user_id)
        return await _on_post(info, input, command)

    @strawberry.mutation
    async def add_comment(self, info: Info, input: AddCommentInput) -> CommandResult:
        command = posts.AddComment(
            post_id=input.post_id,
            comment_id=str(uuid.uuid4()),
            author_id=input.author_id,
            author_exists=await user_exists(info, str(input.author_id)),
            text=input.text,
        )
        return await _on_post(info, input, command)

    @strawberry.mutation
    async def edit_comment(self, info: Info, input: EditCommentInput) -> CommandResult:
        command = posts.EditComment(
            post_id=input.post_id, comment_id=input.comment_id, text=input.text
        )
        return await _on_post(info, input, command)

    @strawberry.mutation
    async def remove_comment(self, info: Info, input: RemoveCommentInput) -> CommandResult:
        command = posts.RemoveComment(post_id=input.post_id, comment_id=input.comment_id)
        return await _on_post(info, input, command)


@strawberry.type
class Comment:
    id: strawberry.ID
    author_id: strawberry.ID
    text: str
    created_at: datetime
    updated_at: datetime

    @strawberry.field
    async def author(self, info: Info) -> User | None:
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
