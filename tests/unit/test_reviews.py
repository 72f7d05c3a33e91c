from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import Duplicate, NotFound, ValidationFailed
from domain.reviews import (
    DECIDER,
    MAX_TEXT,
    ProductReviewed,
    ReviewProduct,
    decide,
    review_id,
)

REVIEW_ID = review_id("p1", "u1")
REVIEWED = ProductReviewed(
    review_id=REVIEW_ID, product_id="p1", user_id="u1", rating=4, text="Good"
)


def command(**changes: object) -> ReviewProduct:
    fields: dict[str, object] = {
        "review_id": REVIEW_ID,
        "product_id": "p1",
        "product_exists": True,
        "user_id": "u1",
        "user_exists": True,
        "rating": 4,
        "text": "  Good ",
    }
    fields.update(changes)
    return ReviewProduct(**fields)  # type: ignore[arg-type]


def test_a_review_is_recorded_with_its_text_trimmed() -> None:
    assert decide(command(), DECIDER.initial_state) == [REVIEWED]


@pytest.mark.parametrize("rating", [1, 5])
def test_ratings_at_both_ends_are_accepted(rating: int) -> None:
    (event,) = decide(command(rating=rating), DECIDER.initial_state)
    assert event.rating == rating


@pytest.mark.parametrize("rating", [0, 6, -1, 2**31 - 1, -(2**31)])
def test_a_rating_outside_1_to_5_is_refused(rating: int) -> None:
    with pytest.raises(ValidationFailed, match="rating must be 1 to 5"):
        decide(command(rating=rating), DECIDER.initial_state)


@pytest.mark.parametrize("text", ["", "   ", "x" * (MAX_TEXT + 1)])
def test_a_bad_text_is_refused(text: str) -> None:
    with pytest.raises(ValidationFailed):
        decide(command(text=text), DECIDER.initial_state)


def test_the_longest_text_is_accepted() -> None:
    (event,) = decide(command(text="é" * MAX_TEXT), DECIDER.initial_state)
    assert len(event.text) == MAX_TEXT


def test_the_product_and_the_user_must_exist() -> None:
    with pytest.raises(NotFound, match="product"):
        decide(command(product_exists=False), DECIDER.initial_state)
    with pytest.raises(NotFound, match="user"):
        decide(command(user_exists=False), DECIDER.initial_state)


def test_a_second_review_of_the_same_pair_is_a_duplicate() -> None:
    state = DECIDER.fold(DECIDER.initial_state, [REVIEWED])
    with pytest.raises(Duplicate, match="already reviewed"):
        decide(command(rating=1, text="Changed my mind"), state)


def test_a_review_under_another_pair_s_id_is_a_fault_not_a_refusal() -> None:
    with pytest.raises(ValueError):
        decide(command(review_id=review_id("p1", "u2")), DECIDER.initial_state)


def test_the_state_holds_the_review() -> None:
    state = DECIDER.fold(DECIDER.initial_state, [REVIEWED])
    assert (state.exists, state.product_id, state.user_id, state.rating, state.text) == (
        True,
        "p1",
        "u1",
        4,
        "Good",
    )


ids = st.text(min_size=0, max_size=12)


@given(ids, ids, ids, ids)
def test_review_ids_are_one_per_pair(p1: str, u1: str, p2: str, u2: str) -> None:
    # Ids that could be joined ambiguously ("a:b" + "c" and "a" + "b:c") still differ.
    assert review_id(p1, u1) == review_id(p1, u1)
    assert (review_id(p1, u1) == review_id(p2, u2)) == ((p1, u1) == (p2, u2))


def test_joined_pairs_do_not_collide() -> None:
    assert review_id("a:b", "c") != review_id("a", "b:c")
    assert review_id('a", "b', "c") != review_id("a", 'b", "c')
