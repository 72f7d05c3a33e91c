from __future__ import annotations

import pytest

from domain.errors import NotFound, RuleViolated, ValidationFailed
from domain.users import (
    DECIDER,
    RegisterUser,
    UpdateUser,
    UserRegistered,
    UserUpdated,
    age_group,
    claims,
    decide,
)

REGISTERED = UserRegistered(user_id="u1", email="Ada@Example.com", name="Ada", age=36)


def given(*events: UserRegistered | UserUpdated):  # type: ignore[no-untyped-def]
    return DECIDER.fold(DECIDER.initial_state, list(events))


def test_register_emits_registered_with_trimmed_values() -> None:
    events = decide(
        RegisterUser(user_id="u1", email=" Ada@Example.com ", name=" Ada ", age=36), given()
    )
    assert events == [REGISTERED]


@pytest.mark.parametrize(
    ("email", "name", "age"),
    [
        ("ada@example.com", "", 30),
        ("ada@example.com", "   ", 30),
        ("ada@example.com", "x" * 201, 30),
        ("ada@example.com", "Ada", 7),
        ("ada@example.com", "Ada", 12),
        ("ada@example.com", "Ada", 151),
        ("not-an-email", "Ada", 30),
        ("ada@", "Ada", 30),
        ("a b@example.com", "Ada", 30),
    ],
)
def test_register_refuses_bad_input(email: str, name: str, age: int) -> None:
    with pytest.raises(ValidationFailed):
        decide(RegisterUser(user_id="u1", email=email, name=name, age=age), given())


def test_register_accepts_age_bounds() -> None:
    for age in (13, 150):
        assert decide(RegisterUser(user_id="u", email="a@b.co", name="A", age=age), given())


def test_register_twice_is_refused() -> None:
    with pytest.raises(RuleViolated):
        decide(RegisterUser(user_id="u1", email="b@c.de", name="B", age=20), given(REGISTERED))


def test_registration_claims_the_lower_case_email() -> None:
    (claim,) = claims(RegisterUser(user_id="u1", email=" Ada@Example.COM", name="A", age=20))
    assert (claim.scope, claim.key, claim.owner_id) == ("user-email", "ada@example.com", "u1")
    assert claims(UpdateUser(user_id="u1", age=20)) == ()


def test_update_emits_only_changed_fields() -> None:
    state = given(REGISTERED)
    assert decide(UpdateUser(user_id="u1", name="Ada", age=37), state) == [
        UserUpdated(user_id="u1", age=37)
    ]
    assert decide(UpdateUser(user_id="u1", name="Lovelace"), state) == [
        UserUpdated(user_id="u1", name="Lovelace")
    ]


def test_update_that_changes_nothing_writes_nothing() -> None:
    assert decide(UpdateUser(user_id="u1", name="Ada", age=36), given(REGISTERED)) == []


def test_update_needs_a_field() -> None:
    with pytest.raises(ValidationFailed):
        decide(UpdateUser(user_id="u1"), given(REGISTERED))


def test_update_validates_values() -> None:
    with pytest.raises(ValidationFailed):
        decide(UpdateUser(user_id="u1", age=200), given(REGISTERED))
    with pytest.raises(ValidationFailed):
        decide(UpdateUser(user_id="u1", name=""), given(REGISTERED))


def test_update_of_unknown_user_is_not_found() -> None:
    with pytest.raises(NotFound):
        decide(UpdateUser(user_id="u9", age=30), given())


def test_evolve_applies_updates() -> None:
    state = given(
        REGISTERED, UserUpdated(user_id="u1", age=40), UserUpdated(user_id="u1", name="A")
    )
    assert (state.name, state.age, state.email) == ("A", 40, "Ada@Example.com")


@pytest.mark.parametrize(
    ("age", "group"), [(13, "TEEN"), (19, "TEEN"), (20, "ADULT"), (64, "ADULT"), (65, "SENIOR")]
)
def test_age_group(age: int, group: str) -> None:
    assert age_group(age) == group
