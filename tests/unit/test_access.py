"""Who may do what (domain/access.py and each decider's `authorize`): every guarded command
against anonymous, the owner, another user, an admin and the service."""

from __future__ import annotations

from typing import Any

import pytest

from domain import catalog, orders, posts, reviews, users
from domain.access import SERVICE, Actor, Forbidden, SignInRequired
from domain.decider import Decider

ANONYMOUS = Actor()
OWNER = Actor(subject="ada", roles=frozenset({"user"}))
OTHER = Actor(subject="bob", roles=frozenset({"user"}))
ADMIN = Actor(subject="root", roles=frozenset({"admin"}))
OPEN_MODE_ADMIN = Actor(subject=None, roles=frozenset({"admin"}))

ADA = users.DECIDER.fold(
    users.INITIAL_STATE,
    [users.UserRegistered(user_id="u1", email="a@x.io", name="Ada", age=36, subject="ada")],
)
UNBOUND = users.DECIDER.fold(
    users.INITIAL_STATE,
    [users.UserRegistered(user_id="u2", email="b@x.io", name="Bea", age=36)],
)

ok = None
CASES: list[tuple[str, Decider[Any, Any, Any], Any, Any, dict[Actor, type[Exception] | None]]] = [
    (
        "register as oneself",
        users.DECIDER,
        users.RegisterUser(user_id="u1", email="a@x.io", name="Ada", age=36, subject="ada"),
        users.INITIAL_STATE,
        {ANONYMOUS: SignInRequired, OWNER: ok, OTHER: Forbidden, ADMIN: ok, SERVICE: ok},
    ),
    (
        "register with no subject bound",
        users.DECIDER,
        users.RegisterUser(user_id="u1", email="a@x.io", name="Ada", age=36),
        users.INITIAL_STATE,
        {ANONYMOUS: SignInRequired, OWNER: Forbidden, OPEN_MODE_ADMIN: ok, ADMIN: ok},
    ),
    (
        "update one's own profile",
        users.DECIDER,
        users.UpdateUser(user_id="u1", name="Ada L."),
        ADA,
        {ANONYMOUS: SignInRequired, OWNER: ok, OTHER: Forbidden, ADMIN: ok, SERVICE: ok},
    ),
    (
        "update a user bound to no subject",
        users.DECIDER,
        users.UpdateUser(user_id="u2", name="Bea B."),
        UNBOUND,
        {OWNER: Forbidden, OTHER: Forbidden, ADMIN: ok, OPEN_MODE_ADMIN: ok},
    ),
    *(
        (
            f"catalog: {type(command).__name__}",
            catalog.DECIDER,
            command,
            catalog.INITIAL_STATE,
            {ANONYMOUS: SignInRequired, OWNER: Forbidden, ADMIN: ok, SERVICE: ok},
        )
        for command in (
            catalog.AddProduct(product_id="p", sku="S", name="N", price_cents=1),
            catalog.RestockProduct(product_id="p", quantity=1),
            catalog.ChangeProductPrice(product_id="p", price_cents=1),
            catalog.ReserveStock(product_id="p", order_id="o", quantity=1),
            catalog.ReleaseStock(product_id="p", order_id="o"),
            catalog.ShipReservedStock(product_id="p", order_id="o"),
        )
    ),
    *(
        (
            f"orders: {type(command).__name__}",
            orders.DECIDER,
            command,
            orders.INITIAL_STATE,
            {ANONYMOUS: SignInRequired, OWNER: Forbidden, ADMIN: ok, SERVICE: ok},
        )
        for command in (
            orders.ShipOrder(order_id="o", carrier="UPS", tracking_number="1Z"),
            orders.DeliverOrder(order_id="o", signed_by="Ann"),
            orders.ConfirmOrder(order_id="o"),
            orders.RejectOrder(order_id="o", reason="no stock"),
        )
    ),
    (
        "orders: place (anyone signed in, for now)",
        orders.DECIDER,
        orders.PlaceOrder(order_id="o"),
        orders.INITIAL_STATE,
        {ANONYMOUS: SignInRequired, OWNER: ok, ADMIN: ok},
    ),
    (
        "posts: create (anyone signed in, for now)",
        posts.DECIDER,
        posts.CreatePost(post_id="p", author_id="u1", author_exists=True, message="Hi"),
        posts.INITIAL_STATE,
        {ANONYMOUS: SignInRequired, OWNER: ok, OPEN_MODE_ADMIN: ok},
    ),
    (
        "reviews: review (anyone signed in, for now)",
        reviews.DECIDER,
        reviews.ReviewProduct(
            review_id=reviews.review_id("p", "u1"),
            product_id="p",
            product_exists=True,
            user_id="u1",
            user_exists=True,
            rating=5,
            text="Good",
        ),
        reviews.INITIAL_STATE,
        {ANONYMOUS: SignInRequired, OWNER: ok},
    ),
]


@pytest.mark.parametrize(
    ("decider", "command", "state", "actor", "expected"),
    [
        pytest.param(decider, command, state, actor, expected, id=f"{name} / {actor}")
        for name, decider, command, state, outcomes in CASES
        for actor, expected in outcomes.items()
    ],
)
def test_who_may_send_what(
    decider: Decider[Any, Any, Any],
    command: Any,
    state: Any,
    actor: Actor,
    expected: type[Exception] | None,
) -> None:
    if expected is None:
        decider.authorize(command, state, actor)
    else:
        with pytest.raises(expected):
            decider.authorize(command, state, actor)


def test_a_subject_holds_one_user_and_registration_binds_it() -> None:
    register = users.RegisterUser(user_id="u1", email="a@x.io", name="Ada", age=36, subject="ada")
    assert [(c.scope, c.key) for c in users.claims(register)] == [
        ("user-email", "a@x.io"),
        ("user-subject", "ada"),
    ]
    email, subject = users.claims(register)
    assert email.taken == "email 'a@x.io' is already registered"  # words a user knows
    assert subject.taken.startswith("subject 'ada' already has a user")
    (event,) = users.decide(register, users.INITIAL_STATE)
    assert users.evolve(users.INITIAL_STATE, event).subject == "ada"
    unbound = users.RegisterUser(user_id="u2", email="b@x.io", name="Bea", age=36)
    assert [c.scope for c in users.claims(unbound)] == ["user-email"]


def test_the_service_and_admins_are_admins_and_nobody_else() -> None:
    assert SERVICE.is_admin and SERVICE.is_system
    assert ADMIN.is_admin and not ADMIN.is_system
    assert not OWNER.is_admin and not ANONYMOUS.is_admin
