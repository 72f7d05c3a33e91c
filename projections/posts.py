"""The posts read model: the feed with like counts, likers and comments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_never

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.posts import DECIDER as posts_decider
from domain.posts import (
    CommentAdded,
    CommentEdited,
    CommentRemoved,
    Event,
    PostCreated,
    PostDeleted,
    PostEdited,
    PostLiked,
    PostUnliked,
)
from projections.projector import Envelope, Tables, type_names

# The read model follows every event of its aggregate: the decider's list, not a copy of it.
HANDLED: tuple[type[Any], ...] = tuple(posts_decider.event_types)


class PostsProjector:
    name = "posts"
    tables: tuple[str, ...] = ("posts_view", "post_comments_view")
    handles = HANDLED
    event_types = type_names(HANDLED)

    async def apply(
        self, connection: AsyncConnection, events: Sequence[Envelope[Event]], tables: Tables
    ) -> None:
        for envelope in events:
            await self._apply_one(connection, envelope, tables)

    async def _apply_one(
        self, connection: AsyncConnection, envelope: Envelope[Event], tables: Tables
    ) -> None:
        posts, comments = tables["posts_view"], tables["post_comments_view"]
        params: dict[str, Any] = {
            "id": envelope.stream_id,
            "version": envelope.version,
            "at": envelope.recorded_at,
        }
        event = envelope.event
        if isinstance(event, PostCreated):
            await connection.execute(
                text(
                    f"INSERT INTO {posts} (id, author_id, message, version, created_at, "
                    "updated_at) VALUES (:id, :author, :message, :version, :at, :at) "
                    "ON CONFLICT (id) DO NOTHING"
                ),
                {**params, "author": event.author_id, "message": event.message},
            )
            return
        # What the event changes in the post's row, besides its version.
        match event:
            case PostEdited(message=message):
                assignment, params["message"] = "message = :message, ", message
            case PostDeleted():
                assignment = "deleted = true, "
            case PostLiked(user_id=user):
                assignment, params["user"] = "liked_by = array_append(liked_by, :user), ", user
            case PostUnliked(user_id=user):
                assignment, params["user"] = "liked_by = array_remove(liked_by, :user), ", user
            case CommentAdded() | CommentEdited() | CommentRemoved():
                assignment = ""
            case other:
                assert_never(other)
        updated = await connection.execute(
            text(
                f"UPDATE {posts} SET {assignment}"
                "version = :version, updated_at = :at WHERE id = :id AND version < :version"
            ),
            params,
        )
        if updated.rowcount == 0:
            return  # already applied
        match event:
            case CommentAdded(comment_id=comment, author_id=author, text=said):
                await connection.execute(
                    text(
                        f"INSERT INTO {comments} (post_id, comment_id, author_id, text, "
                        "created_at, updated_at) VALUES (:id, :comment, :author, :text, :at, :at)"
                    ),
                    {
                        "id": envelope.stream_id,
                        "comment": comment,
                        "author": author,
                        "text": said,
                        "at": envelope.recorded_at,
                    },
                )
            case CommentEdited(comment_id=comment, text=said):
                await connection.execute(
                    text(
                        f"UPDATE {comments} SET text = :text, updated_at = :at "
                        "WHERE post_id = :id AND comment_id = :comment"
                    ),
                    {
                        "id": envelope.stream_id,
                        "comment": comment,
                        "text": said,
                        "at": envelope.recorded_at,
                    },
                )
            case CommentRemoved(comment_id=comment):
                await connection.execute(
                    text(f"DELETE FROM {comments} WHERE post_id = :id AND comment_id = :comment"),
                    {"id": envelope.stream_id, "comment": comment},
                )
            case _:
                pass
