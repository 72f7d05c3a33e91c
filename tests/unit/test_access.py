"""Who may do what (domain/access.py and each decider's `authorize`): every guarded command
against anonymous, the owner, another user, an admin and the service."""

from __future__ import annotations

from typing import Any

import pytest

from domain import catalog, orders, posts, reviews, users
from domain.access import SERVICE, Actor, Forbidden, SignInRequired
from domain.decider import Decider
from domain.errors import NotFound

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

ADDRESS = orders.Address(line1="1 Main St", city="Springfield", postal_code="1", country="US")
ENTRY = orders.CatalogEntry(sku="S", name="Lamp", unit_price_cents=100)
ADAS_ORDER = orders.DECIDER.fold(
    orders.INITIAL_STATE,
    [
        orders.OrderCreated(
            order_id="o", customer_id="u1", shipping_address=ADDRESS, customer_subject="ada"
        )
    ],
)
UNBOUND_ORDER = orders.DECIDER.fold(
    orders.INITIAL_STATE,
    [orders.OrderCreated(order_id="o", customer_id="u2", shipping_address=ADDRESS)],
)
ADAS_POST = posts.DECIDER.fold(
    posts.INITIAL_STATE,
    [
        posts.PostCreated(post_id="p", author_id="u1", message="Hi", author_subject="ada"),
        posts.CommentAdded(
            post_id="p", comment_id="c1", author_id="u1", text="Yo", author_subject="ada"
        ),
    ],
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
        "orders: create as oneself",
        orders.DECIDER,
        orders.CreateOrder(
            order_id="o",
            customer_id="u1",
            customer_exists=True,
            shipping_address=ADDRESS,
            customer_subject="ada",
        ),
        orders.INITIAL_STATE,
        {ANONYMOUS: SignInRequired, OWNER: ok, OTHER: Forbidden, ADMIN: ok},
    ),
    *(
        (
            f"orders: {type(command).__name__} on one's own order",
            orders.DECIDER,
            command,
            ADAS_ORDER,
            # Another's order is NOT_FOUND to them: not a hint that it exists.
            {ANONYMOUS: SignInRequired, OWNER: ok, OTHER: NotFound, ADMIN: ok, SERVICE: ok},
        )
        for command in (
            orders.AddLineItem(order_id="o", product_id="p", quantity=1, product=ENTRY),
            orders.RemoveLineItem(order_id="o", product_id="p"),
            orders.PlaceOrder(order_id="o"),
            orders.PayOrder(order_id="o", amount_cents=1, method="card"),
            orders.CancelOrder(order_id="o", reason="changed my mind"),
        )
    ),
    (
        "orders: an order bound to no subject is for admins",
        orders.DECIDER,
        orders.PlaceOrder(order_id="o"),
        UNBOUND_ORDER,
        {OWNER: NotFound, OPEN_MODE_ADMIN: ok},
    ),
    (
        "posts: create as oneself",
        posts.DECIDER,
        posts.CreatePost(
            post_id="p", author_id="u1", author_exists=True, message="Hi", author_subject="ada"
        ),
        posts.INITIAL_STATE,
        {ANONYMOUS: SignInRequired, OWNER: ok, OTHER: Forbidden, OPEN_MODE_ADMIN: ok},
    ),
    *(
        (
            f"posts: {type(command).__name__} of one's own",
            posts.DECIDER,
            command,
            ADAS_POST,
            {ANONYMOUS: SignInRequired, OWNER: ok, OTHER: Forbidden, ADMIN: ok},
        )
        for command in (
            posts.EditPost(post_id="p", message="Bye"),
            posts.DeletePost(post_id="p"),
            posts.EditComment(post_id="p", comment_id="c1", text="Edited"),
            posts.RemoveComment(post_id="p", comment_id="c1"),
        )
    ),
    *(
        (
            f"posts: {type(command).__name__} as oneself",
            posts.DECIDER,
            command,
            ADAS_POST,
            {ANONYMOUS: SignInRequired, OWNER: ok, OTHER: Forbidden, ADMIN: ok},
        )
        for command in (
            posts.LikePost(post_id="p", user_id="u1", user_exists=True, user_subject="ada"),
            posts.UnlikePost(post_id="p", user_id="u1", user_subject="ada"),
            posts.AddComment(
                post_id="p",
                comment_id="c2",
                author_id="u1",
                author_exists=True,
                text="Hi",
                author_subject="ada",
            ),
        )
    ),
    (
        "posts: a post that does not exist is left to decide (NOT_FOUND)",
        posts.DECIDER,
        posts.EditPost(post_id="nope", message="x"),
        posts.INITIAL_STATE,
        {OTHER: ok},
    ),
    (
        "reviews: review as oneself",
        reviews.DECIDER,
        reviews.ReviewProduct(
            review_id=reviews.review_id("p", "u1"),
            product_id="p",
            product_exists=True,
            user_id="u1",
            user_exists=True,
            rating=5,
            text="Good",
            user_subject="ada",
        ),
        reviews.INITIAL_STATE,
        {ANONYMOUS: SignInRequired, OWNER: ok, OTHER: Forbidden, ADMIN: ok},
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
