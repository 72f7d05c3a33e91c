from __future__ import annotations

import pytest

from domain.errors import NotFound, RuleViolated, ValidationFailed
from domain.posts import (
    DECIDER,
    AddComment,
    CommentAdded,
    CommentEdited,
    CommentRemoved,
    CreatePost,
    DeletePost,
    EditComment,
    EditPost,
    Event,
    LikePost,
    PostCreated,
    PostDeleted,
    PostEdited,
    PostLiked,
    PostUnliked,
    RemoveComment,
    UnlikePost,
    decide,
)

CREATED = PostCreated(post_id="p1", author_id="u1", message="Hello")
COMMENTED = CommentAdded(post_id="p1", comment_id="c1", author_id="u2", text="Hi")


def given(*events: Event):  # type: ignore[no-untyped-def]
    return DECIDER.fold(DECIDER.initial_state, list(events))


def test_create_post() -> None:
    assert decide(
        CreatePost(post_id="p1", author_id="u1", author_exists=True, message=" Hello "), given()
    ) == [CREATED]


@pytest.mark.parametrize("message", ["", "   ", "x" * 5001])
def test_create_post_refuses_a_bad_message(message: str) -> None:
    with pytest.raises(ValidationFailed):
        decide(
            CreatePost(post_id="p1", author_id="u1", author_exists=True, message=message), given()
        )


def test_the_author_must_exist() -> None:
    with pytest.raises(NotFound):
        decide(
            CreatePost(post_id="p1", author_id="ghost", author_exists=False, message="Hi"), given()
        )


def test_edit_and_delete() -> None:
    state = given(CREATED)
    assert decide(EditPost(post_id="p1", message="Bye"), state) == [
        PostEdited(post_id="p1", message="Bye")
    ]
    assert decide(EditPost(post_id="p1", message="Hello"), state) == []
    assert decide(DeletePost(post_id="p1"), state) == [PostDeleted(post_id="p1")]


def test_one_like_per_user() -> None:
    state = given(CREATED)
    assert decide(LikePost(post_id="p1", user_id="u2", user_exists=True), state) == [
        PostLiked(post_id="p1", user_id="u2")
    ]
    liked = given(CREATED, PostLiked(post_id="p1", user_id="u2"))
    with pytest.raises(RuleViolated):
        decide(LikePost(post_id="p1", user_id="u2", user_exists=True), liked)
    with pytest.raises(NotFound):
        decide(LikePost(post_id="p1", user_id="ghost", user_exists=False), state)


def test_unlike_needs_a_like() -> None:
    liked = given(CREATED, PostLiked(post_id="p1", user_id="u2"))
    assert decide(UnlikePost(post_id="p1", user_id="u2"), liked) == [
        PostUnliked(post_id="p1", user_id="u2")
    ]
    with pytest.raises(RuleViolated):
        decide(UnlikePost(post_id="p1", user_id="u3"), liked)
    unliked = given(
        CREATED, PostLiked(post_id="p1", user_id="u2"), PostUnliked(post_id="p1", user_id="u2")
    )
    assert unliked.liked_by == ()


def test_comments_are_added_edited_and_removed_by_id() -> None:
    command = AddComment(
        post_id="p1", comment_id="c1", author_id="u2", author_exists=True, text=" Hi "
    )
    assert decide(command, given(CREATED)) == [COMMENTED]
    state = given(CREATED, COMMENTED)
    assert decide(EditComment(post_id="p1", comment_id="c1", text="Hey"), state) == [
        CommentEdited(post_id="p1", comment_id="c1", text="Hey")
    ]
    assert decide(RemoveComment(post_id="p1", comment_id="c1"), state) == [
        CommentRemoved(post_id="p1", comment_id="c1")
    ]
    with pytest.raises(NotFound):
        decide(EditComment(post_id="p1", comment_id="c9", text="x"), state)
    with pytest.raises(NotFound):
        decide(RemoveComment(post_id="p1", comment_id="c9"), state)
    edited = given(CREATED, COMMENTED, CommentEdited(post_id="p1", comment_id="c1", text="Hey"))
    assert edited.comments[0].text == "Hey"
    removed = given(CREATED, COMMENTED, CommentRemoved(post_id="p1", comment_id="c1"))
    assert removed.comments == ()


@pytest.mark.parametrize("text", ["", "x" * 2001])
def test_comment_length(text: str) -> None:
    with pytest.raises(ValidationFailed):
        decide(
            AddComment(
                post_id="p1", comment_id="c1", author_id="u2", author_exists=True, text=text
            ),
            given(CREATED),
        )


def test_comment_author_must_exist() -> None:
    with pytest.raises(NotFound):
        decide(
            AddComment(post_id="p1", comment_id="c1", author_id="x", author_exists=False, text="t"),
            given(CREATED),
        )


@pytest.mark.parametrize(
    "command",
    [
        EditPost(post_id="p1", message="x"),
        DeletePost(post_id="p1"),
        LikePost(post_id="p1", user_id="u2", user_exists=True),
        UnlikePost(post_id="p1", user_id="u2"),
        AddComment(post_id="p1", comment_id="c2", author_id="u2", author_exists=True, text="t"),
        EditComment(post_id="p1", comment_id="c1", text="t"),
        RemoveComment(post_id="p1", comment_id="c1"),
    ],
)
def test_nothing_can_be_done_to_a_deleted_post(command: object) -> None:
    deleted = given(
        CREATED, COMMENTED, PostLiked(post_id="p1", user_id="u2"), PostDeleted(post_id="p1")
    )
    with pytest.raises(RuleViolated):
        decide(command, deleted)  # type: ignore[arg-type]


def test_commands_on_an_unknown_post_are_not_found() -> None:
    with pytest.raises(NotFound):
        decide(EditPost(post_id="p9", message="x"), given())
