"""The posts read model: the feed with like counts, likers and comments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.projector import Tables
from store.events import RecordedEvent

_POST_UPDATES = {
    "PostEdited": "message = :message",
    "PostDeleted": "deleted = true",
    "PostLiked": "liked_by = array_append(liked_by, :user)",
    "PostUnliked": "liked_by = array_remove(liked_by, :user)",
    "CommentAdded": "",
    "CommentEdited": "",
    "CommentRemoved": "",
}


class PostsProjector:
    name = "posts"
    tables: tuple[str, ...] = ("posts_view", "post_comments_view")
    event_types = frozenset({"PostCreated", *_POST_UPDATES})

    async def apply(
        self, connection: AsyncConnection, events: Sequence[RecordedEvent], tables: Tables
    ) -> None:
        for event in events:
            await self._apply_one(connection, event, tables)

    async def _apply_one(
        self, connection: AsyncConnection, event: RecordedEvent, tables: Tables
    ) -> None:
        posts, comments = tables["posts_view"], tables["post_comments_view"]
        data = event.data
        params: dict[str, Any] = {
            "id": event.stream_id,
            "version": event.version,
            "at": event.recorded_at,
        }
        if event.event_type == "PostCreated":
            await connection.execute(
                text(
                    f"INSERT INTO {posts} (id, author_id, message, version, created_at, "
                    "updated_at) VALUES (:id, :author, :message, :version, :at, :at) "
                    "ON CONFLICT (id) DO NOTHING"
                ),
                {**params, "author": data["author_id"], "message": data["message"]},
            )
            return
        assignment = _POST_UPDATES[event.event_type]
        params.update(message=data.get("message"), user=data.get("user_id"))
        updated = await connection.execute(
            text(
                f"UPDATE {posts} SET {assignment + ', ' if assignment else ''}"
                "version = :version, updated_at = :at WHERE id = :id AND version < :version"
            ),
            params,
        )
        if updated.rowcount == 0:
            return  # already applied
        comment = {
            "id": event.stream_id,
            "comment": data.get("comment_id"),
            "at": event.recorded_at,
        }
        if event.event_type == "CommentAdded":
            await connection.execute(
                text(
                    f"INSERT INTO {comments} (post_id, comment_id, author_id, text, created_at, "
                    "updated_at) VALUES (:id, :comment, :author, :text, :at, :at)"
                ),
                {**comment, "author": data["author_id"], "text": data["text"]},
            )
        elif event.event_type == "CommentEdited":
            await connection.execute(
                text(
                    f"UPDATE {comments} SET text = :text, updated_at = :at "
                    "WHERE post_id = :id AND comment_id = :comment"
                ),
                {**comment, "text": data["text"]},
            )
        elif event.event_type == "CommentRemoved":
            await connection.execute(
                text(f"DELETE FROM {comments} WHERE post_id = :id AND comment_id = :comment"),
                {"id": event.stream_id, "comment": data["comment_id"]},
            )
