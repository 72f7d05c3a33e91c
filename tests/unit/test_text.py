"""Client text in the domain's messages is quoted short; unstorable text is named."""

from __future__ import annotations

import pytest

from domain.errors import NotFound, ValidationFailed
from domain.text import QUOTED_LENGTH, quoted, unstorable
from domain.users import INITIAL_STATE, RegisterUser, UpdateUser, decide


def test_a_short_value_is_quoted_whole() -> None:
    assert quoted("ada@example") == "'ada@example'"


def test_a_long_value_is_quoted_by_a_short_prefix() -> None:
    text = quoted("x" * 1_000_000)
    assert text.startswith("'" + "x" * QUOTED_LENGTH + "'…")
    assert "1000000 characters" in text
    assert len(text) < 100


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ada", None),
        ("ada\x00", "NUL"),
        ("\ud800", "U+D800"),
        ("a\udfffb", "U+DFFF"),
        ("\U0001f600 emoji", None),
    ],
)
def test_nul_and_lone_surrogates_are_unstorable(text: str, reason: str | None) -> None:
    found = unstorable(text)
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


def test_an_invalid_email_is_quoted_by_a_short_prefix() -> None:
    email = "not-an-email" * 100_000
    with pytest.raises(ValidationFailed) as refused:
        decide(RegisterUser(user_id="u1", email=email, name="Ada", age=30), INITIAL_STATE)
    assert "not-an-email" in refused.value.message
    assert len(refused.value.message) < 200


def test_an_unknown_user_id_is_quoted_by_a_short_prefix() -> None:
    user_id = "u" * 1_000_000
    with pytest.raises(NotFound) as refused:
        decide(UpdateUser(user_id=user_id, age=30), INITIAL_STATE)
    assert len(refused.value.message) < 200


def test_refusals_of_every_aggregate_quote_a_client_id_briefly() -> None:
    from domain import catalog, orders, posts
    from domain.errors import DomainError

    huge = "x" * 1_000_000
    refusals = [
        lambda: catalog.DECIDER.decide(
            catalog.RestockProduct(product_id=huge, quantity=1), catalog.DECIDER.initial_state
        ),
        lambda: orders.DECIDER.decide(
            orders.PlaceOrder(order_id=huge), orders.DECIDER.initial_state
        ),
        lambda: posts.DECIDER.decide(
            posts.LikePost(post_id=huge, user_id=huge, user_exists=True),
            posts.DECIDER.initial_state,
        ),
    ]
    for refuse in refusals:
        with pytest.raises(DomainError) as refused:
            refuse()
        assert len(refused.value.message) < 200, refused.value.message[:300]
