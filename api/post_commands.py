"""Posts' commands: mutations to commands of domain/posts.py."""

from __future__ import annotations

import uuid
from typing import Any

import strawberry

from api.command_input import CommandInput, VersionedCommandInput
from api.commands import execute_input, new_stream_id
from api.context import Info
from api.lookups import user_state
from api.types import CommandResult
from domain import posts


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
    return await execute_input(info, posts.DECIDER, str(input.post_id), command, input)


@strawberry.type
class PostMutations:
    @strawberry.mutation
    async def create_post(self, info: Info, input: CreatePostInput) -> CommandResult:
        post_id = new_stream_id("post", input.command_id)
        author = await user_state(info, str(input.author_id))
        command = posts.CreatePost(
            post_id=post_id,
            author_id=input.author_id,
            author_exists=author.registered,
            author_subject=author.subject,
            message=input.message,
        )
        return await execute_input(info, posts.DECIDER, post_id, command, input)

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
        user = await user_state(info, str(input.user_id))
        command = posts.LikePost(
            post_id=input.post_id,
            user_id=input.user_id,
            user_exists=user.registered,
            user_subject=user.subject,
        )
        return await _on_post(info, input, command)

    @strawberry.mutation
    async def unlike_post(self, info: Info, input: UnlikePostInput) -> CommandResult:
        user = await user_state(info, str(input.user_id))
        command = posts.UnlikePost(
            post_id=input.post_id, user_id=input.user_id, user_subject=user.subject
        )
        return await _on_post(info, input, command)

    @strawberry.mutation
    async def add_comment(self, info: Info, input: AddCommentInput) -> CommandResult:
        author = await user_state(info, str(input.author_id))
        command = posts.AddComment(
            post_id=input.post_id,
            comment_id=str(uuid.uuid4()),
            author_id=input.author_id,
            author_exists=author.registered,
            author_subject=author.subject,
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
