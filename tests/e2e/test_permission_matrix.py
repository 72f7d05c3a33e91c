"""Who may do what, the whole matrix (issue 13): every mutation of the contract sent by an
anonymous caller, another user, the owner and an admin, each against a target of its own made
fresh, with the expected answer; a refusal writes nothing. Then every query's answer to each."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import graphql
import httpx
import pytest

from api.schema import build_schema
from tests.conftest import _admin, _with_database
from tests.e2e.conftest import Server, start_server
from tests.e2e.test_auth import SECRET, post, token
from tests.e2e.test_privacy import ADDRESS, answer, messages, someone, subscribe

CALLERS = ("anonymous", "other", "owner", "admin")
OK = None


@pytest.fixture(scope="module")
def secured(
    server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    name = template_database.replace("_template", "_matrix")
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    url = _with_database(server_url, name)
    env = {
        "DATABASE_URL": url,
        "CHRONICLE_JWT_SECRET": SECRET,
        "CHRONICLE_JWT_ISSUER": "https://id.example.com",
        "CHRONICLE_JWT_AUDIENCE": "chronicle",
    }
    server = start_server(env, tmp_path_factory.mktemp("matrix") / "serve.log")
    try:
        yield server, url
    finally:
        server.stop()
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert "Traceback" not in server.output(), server.output()


class World:
    """The server, an owner and another user, and ways to make fresh targets."""

    def __init__(self, server: Server, url: str) -> None:
        self.server = server
        self.url = url
        self.owner = someone(server)
        self.other = someone(server)
        self.admin = token(f"root-{uuid.uuid4().hex[:6]}", "admin")

    def bearer(self, caller: str) -> str | None:
        return {
            "anonymous": None,
            "other": self.other.bearer,
            "owner": self.owner.bearer,
            "admin": self.admin,
        }[caller]

    def run(self, bearer: str | None, mutation: str, **fields: Any) -> httpx.Response:
        input_type = mutation[0].upper() + mutation[1:] + "Input"
        document = f"mutation($input: {input_type}!) {{ {mutation}(input: $input) {{ streamId }} }}"
        return post(self.server, document, bearer, input=fields)

    def ok(self, bearer: str | None, mutation: str, **fields: Any) -> str:
        body = self.run(bearer, mutation, **fields).json()
        assert "errors" not in body, (mutation, body)
        return str(body["data"][mutation]["streamId"])

    # ------------------------------------------------------------ fresh targets

    def product(self, stock: int = 50) -> str:
        sku = f"SKU-{uuid.uuid4().hex[:10]}"
        return self.ok(
            self.admin, "addProduct", sku=sku, name="Lamp", priceCents=250, initialStock=stock
        )

    def order(self, *, items: int = 0) -> str:
        order_id = self.ok(
            self.owner.bearer,
            "createOrder",
            customerId=self.owner.user_id,
            shippingAddress=ADDRESS,
        )
        for _ in range(items):
            self.ok(
                self.owner.bearer, "addLineItem", orderId=order_id, productId=self.lamp, quantity=2
            )
        return order_id

    def confirmed_order(self) -> str:
        order_id = self.order(items=1)
        placed = post(
            self.server,
            "mutation($id: ID!) { placeOrder(input: {orderId: $id}) { fulfilment { status } } }",
            self.owner.bearer,
            id=order_id,
        ).json()
        assert placed["data"]["placeOrder"]["fulfilment"]["status"] == "CONFIRMED", placed
        return order_id

    def paid_order(self) -> str:
        order_id = self.confirmed_order()
        self.ok(self.owner.bearer, "payOrder", orderId=order_id, amountCents=500, method="card")
        return order_id

    def shipped_order(self) -> str:
        order_id = self.paid_order()
        self.ok(self.admin, "shipOrder", orderId=order_id, carrier="UPS", trackingNumber="1Z")
        return order_id

    def post_of_owner(self) -> str:
        return self.ok(
            self.owner.bearer, "createPost", authorId=self.owner.user_id, message="Hello"
        )

    def comment_of_owner(self) -> tuple[str, str]:
        post_id = self.post_of_owner()
        result = post(
            self.server,
            "mutation($input: AddCommentInput!) { addComment(input: $input) { events { data } } }",
            self.owner.bearer,
            input={"postId": post_id, "authorId": self.owner.user_id, "text": "First"},
        ).json()
        return post_id, str(result["data"]["addComment"]["events"][0]["data"]["comment_id"])

    @property
    def lamp(self) -> str:
        if not hasattr(self, "_lamp"):
            self._lamp = self.product(stock=1_000_000)
        return self._lamp


Prepare = Callable[[World], dict[str, Any]]
NOT_OWNERS = "NOT_FOUND"
"""What another user is told of an order: as if it did not exist."""

ROWS: list[tuple[str, Prepare, dict[str, str | None]]] = [
    (
        "updateUser",
        lambda w: {"userId": w.owner.user_id, "name": f"Renamed {uuid.uuid4().hex[:6]}"},
        {"anonymous": "UNAUTHENTICATED", "other": "FORBIDDEN", "owner": OK, "admin": OK},
    ),
    *[
        (
            mutation,
            prepare,
            {
                "anonymous": "UNAUTHENTICATED",
                "other": "FORBIDDEN",
                "owner": "FORBIDDEN",
                "admin": OK,
            },
        )
        for mutation, prepare in (
            (
                "addProduct",
                lambda w: {"sku": f"S-{uuid.uuid4().hex[:8]}", "name": "L", "priceCents": 1},
            ),
            ("restockProduct", lambda w: {"productId": w.product(), "quantity": 3}),
            ("changeProductPrice", lambda w: {"productId": w.product(), "priceCents": 300}),
            (
                "shipOrder",
                lambda w: {"orderId": w.paid_order(), "carrier": "UPS", "trackingNumber": "1Z"},
            ),
            ("deliverOrder", lambda w: {"orderId": w.shipped_order(), "signedBy": "Ada"}),
        )
    ],
    (
        "createOrder",
        lambda w: {"customerId": w.owner.user_id, "shippingAddress": ADDRESS},
        {"anonymous": "UNAUTHENTICATED", "other": "FORBIDDEN", "owner": OK, "admin": OK},
    ),
    *[
        (
            mutation,
            prepare,
            {"anonymous": "UNAUTHENTICATED", "other": NOT_OWNERS, "owner": OK, "admin": OK},
        )
        for mutation, prepare in (
            (
                "addLineItem",
                lambda w: {"orderId": w.order(), "productId": w.lamp, "quantity": 1},
            ),
            ("removeLineItem", lambda w: {"orderId": w.order(items=1), "productId": w.lamp}),
            ("placeOrder", lambda w: {"orderId": w.order(items=1)}),
            (
                "payOrder",
                lambda w: {"orderId": w.confirmed_order(), "amountCents": 500, "method": "card"},
            ),
            (
                "payOrderAmount",
                lambda w: {"orderId": w.confirmed_order(), "amount": "500", "method": "card"},
            ),
            ("cancelOrder", lambda w: {"orderId": w.order(), "reason": "changed my mind"}),
        )
    ],
    *[
        (
            mutation,
            prepare,
            {"anonymous": "UNAUTHENTICATED", "other": "FORBIDDEN", "owner": OK, "admin": OK},
        )
        for mutation, prepare in (
            ("createPost", lambda w: {"authorId": w.owner.user_id, "message": "Hi"}),
            ("editPost", lambda w: {"postId": w.post_of_owner(), "message": "Edited"}),
            ("deletePost", lambda w: {"postId": w.post_of_owner()}),
            ("likePost", lambda w: {"postId": w.post_of_owner(), "userId": w.owner.user_id}),
            ("unlikePost", lambda w: liked_by_owner(w)),
            (
                "addComment",
                lambda w: {"postId": w.post_of_owner(), "authorId": w.owner.user_id, "text": "!"},
            ),
            (
                "editComment",
                lambda w: (
                    dict(zip(("postId", "commentId"), w.comment_of_owner(), strict=True))
                    | {"text": "Edited"}
                ),
            ),
            (
                "removeComment",
                lambda w: dict(zip(("postId", "commentId"), w.comment_of_owner(), strict=True)),
            ),
            (
                "reviewProduct",
                lambda w: {
                    "productId": w.product(),
                    "userId": w.owner.user_id,
                    "rating": 4,
                    "text": "Good",
                },
            ),
        )
    ],
]


def liked_by_owner(world: World) -> dict[str, Any]:
    post_id = world.post_of_owner()
    world.ok(world.owner.bearer, "likePost", postId=post_id, userId=world.owner.user_id)
    return {"postId": post_id, "userId": world.owner.user_id}


async def written_by(url: str, command_id: str) -> int:
    """Events of the command `command_id` (the fulfilment process writes on meanwhile: the
    whole log's count would not stand still)."""
    connection = await asyncpg.connect(url)
    try:
        query = "SELECT count(*) FROM events WHERE metadata->>'commandId' = $1"
        return int(await connection.fetchval(query, command_id))
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def world(secured: tuple[Server, str]) -> World:
    return World(*secured)


def operations(kind: str) -> set[str]:
    """The fields of the schema's `kind` type (`Query`, `Mutation`)."""
    schema = build_schema().as_str()
    return set(graphql.build_schema(schema).get_type(kind).fields)  # type: ignore[union-attr]


def test_the_matrix_covers_every_mutation_of_the_schema() -> None:
    named = operations("Mutation") - {"registerUser", *ADMIN_OPERATIONS}
    assert named == {row[0] for row in ROWS}


@pytest.mark.parametrize("mutation, prepare, expected", ROWS, ids=[row[0] for row in ROWS])
async def test_each_mutation_answers_each_caller_as_the_rules_say(
    world: World, mutation: str, prepare: Prepare, expected: dict[str, str | None]
) -> None:
    for caller in CALLERS:
        fields = prepare(world)
        command_id = str(uuid.uuid4())
        body = world.run(world.bearer(caller), mutation, **fields, commandId=command_id).json()
        code = body["errors"][0]["extensions"]["code"] if "errors" in body else None
        assert code == expected[caller], (mutation, caller, body)
        if code is None:
            assert body["data"][mutation]["streamId"], body
            assert await written_by(world.url, command_id) > 0
        else:
            assert body["data"] is None, body
            assert await written_by(world.url, command_id) == 0, (mutation, caller)


async def test_registration(world: World) -> None:
    fields = {"name": "New", "age": 30}
    for bearer, code in (
        (None, "UNAUTHENTICATED"),
        (world.other.bearer, "DUPLICATE"),  # one user per subject: theirs exists
        (world.other.bearer, "FORBIDDEN"),  # on behalf of another subject: admins only
    ):
        extra = {"subject": "someone"} if code == "FORBIDDEN" else {}
        command_id = str(uuid.uuid4())
        email = f"{uuid.uuid4().hex}@x.io"
        body = world.run(
            bearer, "registerUser", email=email, commandId=command_id, **fields, **extra
        )
        assert body.json()["errors"][0]["extensions"]["code"] == code
        assert await written_by(world.url, command_id) == 0
    assert world.ok(token(f"new-{uuid.uuid4().hex[:6]}"), "registerUser", email="n@x.io", **fields)
    assert world.ok(world.admin, "registerUser", email="a@x.io", subject="bound-by-admin", **fields)


ADMIN_OPERATIONS = {
    # The read models' operations: each caller's refusal, then an admin's answer.
    "rebuildProjection": (
        'mutation { rebuildProjection(name: "owners") { name } }',
        {"rebuildProjection": {"name": "owners"}},
    ),
    "verifyProjection": (
        'mutation { verifyProjection(name: "products") { name ok differences } }',
        {"verifyProjection": {"name": "products", "ok": True, "differences": 0}},
    ),
    "retryParked": (
        'mutation { retryParked(projection: "posts") { name parked } }',
        {"retryParked": {"name": "posts", "parked": 0}},
    ),
    "skipParked": (
        # Nothing is parked: an admin is told so, as NOT_FOUND (below).
        'mutation { skipParked(projection: "posts", position: "1") { name } }',
        None,
    ),
}


@pytest.mark.parametrize("operation", sorted(ADMIN_OPERATIONS))
def test_the_read_models_operations_are_for_admins(world: World, operation: str) -> None:
    document, admins_answer = ADMIN_OPERATIONS[operation]
    for caller, code in (
        ("anonymous", "UNAUTHENTICATED"),
        ("other", "FORBIDDEN"),
        ("owner", "FORBIDDEN"),
    ):
        body = post(world.server, document, world.bearer(caller)).json()
        assert body["errors"][0]["extensions"]["code"] == code, (caller, body)
    body = answer(world.server, world.admin, document)
    if admins_answer is None:
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND", body
    else:
        assert body == {"data": admins_answer}


QUERIES: list[tuple[str, str, dict[str, str | None]]] = [
    # (document, the field asked, each caller's code: None answers with data)
    ("{ me { id } }", "me", dict.fromkeys(CALLERS, OK)),
    ("query($u: ID!) { user(id: $u) { id name ageGroup } }", "user", dict.fromkeys(CALLERS, OK)),
    (
        "query($u: ID!) { user(id: $u) { email } }",
        "user",
        {"anonymous": "UNAUTHENTICATED", "other": "FORBIDDEN", "owner": OK, "admin": OK},
    ),
    ("{ users(first: 5) { totalCount } }", "users", dict.fromkeys(CALLERS, OK)),
    (
        "{ users(first: 5, minAge: 20) { totalCount } }",
        "users",
        {"anonymous": "UNAUTHENTICATED", "other": "FORBIDDEN", "owner": "FORBIDDEN", "admin": OK},
    ),
    (
        "{ userSummary { totalUsers } }",
        "userSummary",
        {"anonymous": "UNAUTHENTICATED", "other": "FORBIDDEN", "owner": "FORBIDDEN", "admin": OK},
    ),
    ("{ products(first: 5) { totalCount } }", "products", dict.fromkeys(CALLERS, OK)),
    ("query($p: ID!) { product(id: $p) { id } }", "product", dict.fromkeys(CALLERS, OK)),
    ("query($o: ID!) { order(id: $o) { id } }", "order", dict.fromkeys(CALLERS, OK)),
    ("{ orders(first: 5) { totalCount } }", "orders", dict.fromkeys(CALLERS, OK)),
    ("{ posts(first: 5) { totalCount } }", "posts", dict.fromkeys(CALLERS, OK)),
    ("query($t: ID!) { post(id: $t) { id } }", "post", dict.fromkeys(CALLERS, OK)),
    (
        "query($p: ID!) { reviews(productId: $p) { totalCount } }",
        "reviews",
        dict.fromkeys(CALLERS, OK),
    ),
    (
        "{ events(first: 5) { position } }",
        "events",
        {"anonymous": "UNAUTHENTICATED", "other": OK, "owner": OK, "admin": OK},
    ),
    (
        "query($o: ID!) { aggregateState(streamId: $o) { version } }",
        "aggregateState",
        {"anonymous": "UNAUTHENTICATED", "other": OK, "owner": OK, "admin": OK},
    ),
    ("{ projections { name } }", "projections", dict.fromkeys(CALLERS, OK)),
    (
        "{ liveStats { subscribers } }",
        "liveStats",
        {"anonymous": "UNAUTHENTICATED", "other": "FORBIDDEN", "owner": "FORBIDDEN", "admin": OK},
    ),
    (
        "{ parkedEvents { position } }",
        "parkedEvents",
        {"anonymous": "UNAUTHENTICATED", "other": "FORBIDDEN", "owner": "FORBIDDEN", "admin": OK},
    ),
]

SEES_THE_OWNERS_ORDER = {"anonymous": False, "other": False, "owner": True, "admin": True}


async def test_each_query_answers_each_caller_as_the_rules_say(world: World) -> None:
    order_id = world.order()
    variables = {
        "u": world.owner.user_id,
        "p": world.lamp,
        "o": order_id,
        "t": world.post_of_owner(),
    }
    for document, field, expected in QUERIES:
        for caller in CALLERS:
            used = {k: v for k, v in variables.items() if f"${k}" in document}
            body = answer(world.server, world.bearer(caller), document, **used)
            code = body["errors"][0]["extensions"]["code"] if "errors" in body else None
            assert code == expected[caller], (document, caller, body)
            if field in ("order", "aggregateState") and code is None:
                # Another user's order, or one the caller may not see, is as if it did not exist.
                assert (body["data"][field] is not None) == SEES_THE_OWNERS_ORDER[caller], (
                    document,
                    caller,
                    body,
                )


def test_the_query_matrix_covers_every_query_of_the_schema() -> None:
    assert operations("Query") == {field for _, field, _ in QUERIES}


Trigger = Callable[[World, str, dict[str, str]], object]
"""Makes a change the subscription shows to `caller`, given the subscription's variables."""


def new_post_seen_by(world: World, caller: str, _: dict[str, str]) -> object:
    author = world.other if caller == "other" else world.owner
    return world.ok(author.bearer, "createPost", authorId=author.user_id, message="News")


SUBSCRIPTIONS: list[tuple[str, dict[str, str | None], Trigger]] = [
    (
        "subscription { events { position } }",
        {"anonymous": "UNAUTHENTICATED", "other": OK, "owner": OK, "admin": OK},
        new_post_seen_by,
    ),
    (
        "subscription($o: ID!) { orderChanged(orderId: $o) { id } }",
        {"anonymous": "UNAUTHENTICATED", "other": NOT_OWNERS, "owner": OK, "admin": OK},
        lambda w, _, v: w.ok(
            w.owner.bearer, "addLineItem", orderId=v["o"], productId=w.lamp, quantity=1
        ),
    ),
    (
        "subscription($t: ID!) { postChanged(postId: $t) { id } }",
        dict.fromkeys(CALLERS, OK),
        lambda w, _, v: w.ok(w.owner.bearer, "editPost", postId=v["t"], message=uuid.uuid4().hex),
    ),
]


async def test_each_subscription_answers_each_caller_as_the_rules_say(world: World) -> None:
    variables = {"o": world.order(), "t": world.post_of_owner()}
    for document, expected, trigger in SUBSCRIPTIONS:
        for caller in CALLERS:
            used = {k: v for k, v in variables.items() if f"${k}" in document}
            socket = await subscribe(world.server, world.bearer(caller), document, **used)
            try:
                if expected[caller] is None:
                    # Started once a ping sent after it is answered; then a change arrives.
                    await socket.send(json.dumps({"type": "ping"}))
                    assert (await anext(messages(socket)))["type"] == "pong"
                    trigger(world, caller, variables)
                first = await anext(messages(socket))
                assert first["type"] == "next", (document, caller, first)
                if expected[caller] is None:
                    assert first["payload"]["data"], (document, caller, first)
                else:
                    code = first["payload"]["errors"][0]["extensions"]["code"]
                    assert code == expected[caller], (document, caller, first)
            finally:
                await socket.close()


def test_the_subscription_matrix_covers_every_subscription_of_the_schema() -> None:
    named = {document.split("{")[1].split("(")[0].strip() for document, *_ in SUBSCRIPTIONS}
    assert operations("Subscription") == named
