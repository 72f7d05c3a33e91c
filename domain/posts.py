"""The Post aggregate: a message with likes (one per user) and comments; deletion is final."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import assert_never

from domain.access import Actor, acting_as
from domain.decider import Decider
from domain.errors import NotFound, RuleViolated, ValidationFailed
from domain.text import quoted

STREAM_TYPE = "Post"
MAX_MESSAGE = 5_000
MAX_COMMENT = 2_000


# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True, kw_only=True)
class CreatePost:
    post_id: str
    author_id: str
    author_exists: bool
    message: str
    author_subject: str | None = None
    """The token subject the author is bound to (looked up by the API)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EditPost:
    post_id: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeletePost:
    post_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LikePost:
    post_id: str
    user_id: str
    user_exists: bool
    user_subject: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnlikePost:
    post_id: str
    user_id: str
    user_subject: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AddComment:
    post_id: str
    comment_id: str
    author_id: str
    author_exists: bool
    text: str
    author_subject: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EditComment:
    post_id: str
    comment_id: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveComment:
    post_id: str
    comment_id: str


Command = (
    CreatePost
    | EditPost
    | DeletePost
    | LikePost
    | UnlikePost
    | AddComment
    | EditComment
    | RemoveComment
)


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class PostCreated:
    post_id: str
    author_id: str
    message: str
    author_subject: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PostEdited:
    post_id: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PostDeleted:
    post_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PostLiked:
    post_id: str
    user_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PostUnliked:
    post_id: str
    user_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CommentAdded:
    post_id: str
    comment_id: str
    author_id: str
    text: str
    author_subject: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommentEdited:
    post_id: str
    comment_id: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CommentRemoved:
    post_id: str
    comment_id: str


Event = (
    PostCreated
    | PostEdited
    | PostDeleted
    | PostLiked
    | PostUnliked
    | CommentAdded
    | CommentEdited
    | CommentRemoved
)


# ---------------------------------------------------------------- state


@dataclass(frozen=True, slots=True, kw_only=True)
class Comment:
    comment_id: str
    author_id: str
    text: str
    author_subject: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Post:
    exists: bool = False
    deleted: bool = False
    post_id: str = ""
    author_id: str = ""
    message: str = ""
    liked_by: tuple[str, ...] = ()
    comments: tuple[Comment, ...] = ()
    author_subject: str | None = None

    def comment(self, comment_id: str) -> Comment | None:
        return next((c for c in self.comments if c.comment_id == comment_id), None)


INITIAL_STATE = Post()


def _message(message: str) -> str:
    message = message.strip()
    if not 1 <= len(message) <= MAX_MESSAGE:
        raise ValidationFailed(f"message must be 1 to {MAX_MESSAGE} characters")
    return message


def _comment_text(text: str) -> str:
    text = text.strip()
    if not 1 <= len(text) <= MAX_COMMENT:
        raise ValidationFailed(f"comment must be 1 to {MAX_COMMENT} characters")
    return text


def _existing_comment(state: Post, comment_id: str) -> Comment:
    comment = state.comment(comment_id)
    if comment is None:
        raise NotFound(f"comment {quoted(comment_id)} is not on post {state.post_id}")
    return comment


def decide(command: Command, state: Post) -> Sequence[Event]:
    if isinstance(command, CreatePost):
        if state.exists:
            raise RuleViolated(f"post {quoted(command.post_id)} already exists")
        message = _message(command.message)
        if not command.author_exists:
            raise NotFound(f"author {quoted(command.author_id)} does not exist")
        return [
            PostCreated(
                post_id=command.post_id,
                author_id=command.author_id,
                message=message,
                author_subject=command.author_subject,
            )
        ]
    if not state.exists:
        raise NotFound(f"post {quoted(command.post_id)} does not exist")
    if state.deleted:
        raise RuleViolated(f"post {state.post_id} is deleted")
    match command:
        case EditPost():
            message = _message(command.message)
            return (
                []
                if message == state.message
                else [PostEdited(post_id=state.post_id, message=message)]
            )
        case DeletePost():
            return [PostDeleted(post_id=state.post_id)]
        case LikePost():
            if not command.user_exists:
                raise NotFound(f"user {quoted(command.user_id)} does not exist")
            if command.user_id in state.liked_by:
                raise RuleViolated(f"user {quoted(command.user_id)} already likes this post")
            return [PostLiked(post_id=state.post_id, user_id=command.user_id)]
        case UnlikePost():
            if command.user_id not in state.liked_by:
                raise RuleViolated(f"user {quoted(command.user_id)} does not like this post")
            return [PostUnliked(post_id=state.post_id, user_id=command.user_id)]
        case AddComment():
            text = _comment_text(command.text)
            if not command.author_exists:
                raise NotFound(f"author {quoted(command.author_id)} does not exist")
            if state.comment(command.comment_id) is not None:
                raise RuleViolated(f"comment {quoted(command.comment_id)} already exists")
            return [
                CommentAdded(
                    post_id=state.post_id,
                    comment_id=command.comment_id,
                    author_id=command.author_id,
                    text=text,
                    author_subject=command.author_subject,
                )
            ]
        case EditComment():
            text = _comment_text(command.text)
            comment = _existing_comment(state, command.comment_id)
            if comment.text == text:
                return []
            return [CommentEdited(post_id=state.post_id, comment_id=comment.comment_id, text=text)]
        case RemoveComment():
            comment = _existing_comment(state, command.comment_id)
            return [CommentRemoved(post_id=state.post_id, comment_id=comment.comment_id)]
        case CreatePost():
            raise AssertionError("handled above")
        case _:
            assert_never(command)


def evolve(state: Post, event: Event) -> Post:
    match event:
        case PostCreated():
            return Post(
                exists=True,
                post_id=event.post_id,
                author_id=event.author_id,
                message=event.message,
                author_subject=event.author_subject,
            )
        case PostEdited():
            return replace(state, message=event.message)
        case PostDeleted():
            return replace(state, deleted=True)
        case PostLiked():
            return replace(state, liked_by=(*state.liked_by, event.user_id))
        case PostUnliked():
            return replace(state, liked_by=tuple(u for u in state.liked_by if u != event.user_id))
        case CommentAdded():
            comment = Comment(
                comment_id=event.comment_id,
                author_id=event.author_id,
                text=event.text,
                author_subject=event.author_subject,
            )
            return replace(state, comments=(*state.comments, comment))
        case CommentEdited():
            comments = tuple(
                replace(c, text=event.text) if c.comment_id == event.comment_id else c
                for c in state.comments
            )
            return replace(state, comments=comments)
        case CommentRemoved():
            comments = tuple(c for c in state.comments if c.comment_id != event.comment_id)
            return replace(state, comments=comments)
        case _:
            assert_never(event)


def authorize(command: Command, state: Post, actor: Actor) -> None:
    """Users post, like and comment as themselves, and edit or delete only their own posts and
    comments; admins may do all of it for anyone. A post or comment that does not exist is
    left to `decide` (NOT_FOUND)."""
    match command:
        case CreatePost():
            acting_as(actor, command.author_subject, "post only as yourself")
        case EditPost() | DeletePost():
            if state.exists:
                acting_as(actor, state.author_subject, "edit or delete only your own posts")
        case LikePost() | UnlikePost():
            acting_as(actor, command.user_subject, "like or unlike only as yourself")
        case AddComment():
            acting_as(actor, command.author_subject, "comment only as yourself")
        case EditComment() | RemoveComment():
            comment = state.comment(command.comment_id)
            if comment is not None:
                acting_as(actor, comment.author_subject, "edit or remove only your own comments")
        case _:
            assert_never(command)


DECIDER: Decider[Command, Post, Event] = Decider(
    stream_type=STREAM_TYPE,
    state_type=Post,
    initial_state=INITIAL_STATE,
    event_types=(
        PostCreated,
        PostEdited,
        PostDeleted,
        PostLiked,
        PostUnliked,
        CommentAdded,
        CommentEdited,
        CommentRemoved,
    ),
    decide=decide,
    evolve=evolve,
    authorize=authorize,
    owners={PostCreated: "author_subject"},
)
