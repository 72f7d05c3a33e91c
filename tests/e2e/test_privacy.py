"""Private data stays private on the read side (issue 13, item 4), end to end against a server
that verifies tokens: users' emails and ages, orders, the audit log and aggregate states, over
HTTP and websockets."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import websockets

from tests.conftest import _admin, _with_database
from tests.e2e.conftest import Server, start_server
from tests.e2e.live import TRANSPORT_WS, raw_socket
from tests.e2e.test_auth import SECRET, done, mutate, post, token

ADMIN = token("root", "admin")
ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}


@pytest.fixture(scope="module")
def secured(
    server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server of its own that requires tokens, on a database of its own."""
    name = template_database.replace("_template", "_privacy")
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    env = {
        "DATABASE_URL": _with_database(server_url, name),
        "CHRONICLE_JWT_SECRET": SECRET,
        "CHRONICLE_JWT_ISSUER": "https://id.example.com",
        "CHRONICLE_JWT_AUDIENCE": "chronicle",
    }
    server = start_server(env, tmp_path_factory.mktemp("privacy") / "serve.log")
    try:
        yield server
    finally:
        server.stop()
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert "Traceback" not in server.output(), server.output()


@dataclass
class Someone:
    subject: str
    bearer: str
    user_id: str
    email: str
    name: str
    position: int


def someone(server: Server, word: str = "") -> Someone:
    """A new user registered by a new subject, with words of its own in email and name."""
    tag = uuid.uuid4().hex[:10]
    subject = f"sub-{tag}"
    bearer = token(subject)
    email = f"mail{tag}@example.com"
    name = f"Name{tag} {word}".strip()
    made = done(mutate(server, bearer, "registerUser", email=email, name=name, age=41))
    return Someone(subject, bearer, made["streamId"], email, name, made["position"])


def answer(server: Server, bearer: str | None, document: str, **variables: Any) -> dict[str, Any]:
    return dict(post(server, document, bearer, **variables).json())


def place_order(server: Server, owner: Someone) -> tuple[str, int]:
    made = done(
        mutate(
            server, owner.bearer, "createOrder", customerId=owner.user_id, shippingAddress=ADDRESS
        )
    )
    return made["streamId"], made["position"]


USER = """query($id: ID!, $min: Position) {
  me(minPosition: $min) { id email age }
  user(id: $id, minPosition: $min) { id name email }
}"""


async def test_email_and_age_are_for_the_user_and_admins_refused_at_the_field(
    secured: Server,
) -> None:
    ada, bob = someone(secured), someone(secured)
    mine = answer(secured, ada.bearer, USER, id=bob.user_id, min=bob.position)
    # The rest of the result intact: `me` with Ada's own email, Bob's email refused where it
    # was asked for (and `user`, whose email is non-null, null).
    assert mine["data"]["me"] == {"id": ada.user_id, "email": ada.email, "age": 41}
    assert mine["data"]["user"] is None
    [error] = mine["errors"]
    assert error["path"] == ["user", "email"] and error["extensions"]["code"] == "FORBIDDEN"
    assert bob.email not in json.dumps(mine)
    # What is not private stays readable.
    public = answer(
        secured, ada.bearer, "query($id: ID!) { user(id: $id) { name ageGroup } }", id=bob.user_id
    )
    assert public == {"data": {"user": {"name": bob.name, "ageGroup": "ADULT"}}}
    # Age too; and an anonymous caller is told to sign in.
    age = answer(secured, ada.bearer, "query($id: ID!) { user(id: $id) { age } }", id=bob.user_id)
    assert age["errors"][0]["path"] == ["user", "age"]
    assert age["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    anonymous = answer(secured, None, "query($id: ID!) { user(id: $id) { email } }", id=bob.user_id)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # Admins read everyone's.
    admin = answer(secured, ADMIN, USER, id=bob.user_id, min=bob.position)
    assert "errors" not in admin and admin["data"]["user"]["email"] == bob.email
    # So does the user through any path: an order's customer is the same User.
    order_id, at = place_order(secured, bob)
    nested = answer(
        secured,
        bob.bearer,
        "query($id: ID!, $min: Position) { order(id: $id, minPosition: $min) { customer { email } } }",
        id=order_id,
        min=at,
    )
    assert nested == {"data": {"order": {"customer": {"email": bob.email}}}}


SEARCH = """query($search: String, $min: Position) {
  users(search: $search, minPosition: $min) { totalCount edges { node { id } } }
}"""


async def test_search_matches_email_words_only_for_those_who_may_read_them(
    secured: Server,
) -> None:
    ada, bob = someone(secured), someone(secured, word="Quill")
    email_word = bob.email.split("@")[0]
    name_word = bob.name.split()[0]

    def found(bearer: str, search: str) -> int:
        result = answer(secured, bearer, SEARCH, search=search, min=bob.position)
        assert "errors" not in result, result
        return int(result["data"]["users"]["totalCount"])

    # Probing for an address learns nothing; names are found as before.
    assert found(ada.bearer, email_word) == 0
    assert found(ada.bearer, name_word) == 1
    assert found(ada.bearer, f"{name_word[:6]} quill") == 1
    # Bob's own address is found by an admin, and by no one else.
    assert found(bob.bearer, email_word) == 0
    assert found(ADMIN, email_word) == 1
    assert found(ADMIN, name_word) == 1
    # Age filters would tell ages: admins only; and the summary is for admins.
    by_age = answer(secured, ada.bearer, "{ users(minAge: 41, maxAge: 41) { totalCount } }")
    assert code_of_body(by_age) == "FORBIDDEN"
    assert "errors" not in answer(secured, ADMIN, "{ users(minAge: 41) { totalCount } }")
    summary = "{ userSummary { totalUsers } }"
    assert code_of_body(answer(secured, ada.bearer, summary)) == "FORBIDDEN"
    assert code_of_body(answer(secured, None, summary)) == "UNAUTHENTICATED"
    assert answer(secured, ADMIN, summary)["data"]["userSummary"]["totalUsers"] >= 2


def code_of_body(body: dict[str, Any]) -> str:
    return str(body["errors"][0]["extensions"]["code"])


ORDER = (
    """query($id: ID!, $min: Position) { order(id: $id, minPosition: $min) { id customerId } }"""
)
ORDERS = """query($customer: ID, $min: Position) {
  orders(first: 100, customerId: $customer, minPosition: $min) { totalCount edges { node { id customerId } } }
}"""


async def test_a_user_reads_only_their_own_orders(secured: Server) -> None:
    ada, bob = someone(secured), someone(secured)
    adas, _ = place_order(secured, ada)
    bobs, at = place_order(secured, bob)

    def order(bearer: str | None, order_id: str) -> Any:
        return answer(secured, bearer, ORDER, id=order_id, min=at)

    assert order(ada.bearer, adas) == {"data": {"order": {"id": adas, "customerId": ada.user_id}}}
    # Another user's order answers exactly as an order that does not exist.
    assert (
        order(ada.bearer, bobs) == order(ada.bearer, str(uuid.uuid4())) == {"data": {"order": None}}
    )
    assert order(None, adas) == {"data": {"order": None}}
    assert order(ADMIN, bobs)["data"]["order"]["id"] == bobs

    def listed(bearer: str, customer: str | None = None) -> set[str]:
        result = answer(secured, bearer, ORDERS, customer=customer, min=at)
        assert "errors" not in result, result
        connection = result["data"]["orders"]
        ids = {edge["node"]["id"] for edge in connection["edges"]}
        assert connection["totalCount"] == len(ids)
        return ids

    assert listed(ada.bearer) == listed(ada.bearer, ada.user_id) == {adas}
    assert listed(ada.bearer, bob.user_id) == set()
    assert {adas, bobs} <= listed(ADMIN)
    assert listed(ADMIN, bob.user_id) == {bobs}
    stranger = token(f"unregistered-{uuid.uuid4().hex[:6]}")
    assert listed(stranger) == set()


async def subscribe(
    server: Server, bearer: str | None, document: str, **variables: Any
) -> websockets.ClientConnection:
    socket = await raw_socket(server, TRANSPORT_WS)
    payload = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
    await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
    async with asyncio.timeout(10):
        assert json.loads(await socket.recv())["type"] == "connection_ack"
    await socket.send(
        json.dumps(
            {
                "type": "subscribe",
                "id": "1",
                "payload": {"query": document, "variables": variables},
            }
        )
    )
    return socket


async def messages(socket: websockets.ClientConnection) -> AsyncIterator[dict[str, Any]]:
    async with asyncio.timeout(30):
        while True:
            message = json.loads(await socket.recv())
            if message["type"] != "ping":
                yield message


ORDER_CHANGED = "subscription($id: ID!) { orderChanged(orderId: $id) { id status } }"
CANCEL = "cancelOrder"


async def test_order_changed_is_for_the_orders_owner(secured: Server) -> None:
    ada, bob = someone(secured), someone(secured)
    adas, _ = place_order(secured, ada)
    for bearer, order_id in ((bob.bearer, adas), (bob.bearer, str(uuid.uuid4()))):
        socket = await subscribe(secured, bearer, ORDER_CHANGED, id=order_id)
        first = await anext(messages(socket))
        assert first["type"] == "next" and first["payload"]["data"] is None, first
        assert first["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        await socket.close()
    socket = await subscribe(secured, ada.bearer, ORDER_CHANGED, id=adas)
    try:
        # Subscribed once the server answers a ping after the subscribe (messages in order).
        await socket.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(10):
            assert json.loads(await socket.recv())["type"] == "pong"
        done(mutate(secured, ada.bearer, CANCEL, orderId=adas, reason="changed my mind"))
        async for message in messages(socket):
            assert message["type"] == "next", message
            if message["payload"]["data"]["orderChanged"]["status"] == "CANCELLED":
                break
    finally:
        await socket.close()


EVENTS = """query($after: Position, $streamId: ID, $streamType: String) {
  events(after: $after, first: 1000, streamId: $streamId, streamType: $streamType) {
    position streamId streamType type
  }
}"""


def all_events(bearer: str | None, server: Server, **filters: Any) -> list[dict[str, Any]]:
    """Every event the caller may read, page by page."""
    seen: list[dict[str, Any]] = []
    after = 0
    while True:
        body = answer(server, bearer, EVENTS, after=after, **filters)
        assert "errors" not in body, body
        page = body["data"]["events"]
        if not page:
            return seen
        seen.extend(page)
        after = page[-1]["position"]


async def test_the_audit_log_shows_a_user_their_own_streams_and_nobody_the_claims(
    secured: Server,
) -> None:
    ada, bob = someone(secured), someone(secured)
    adas, _ = place_order(secured, ada)
    bobs, _ = place_order(secured, bob)
    mine = all_events(ada.bearer, secured)
    assert {e["streamId"] for e in mine} == {ada.user_id, adas}
    assert [e["type"] for e in mine] == ["UserRegistered", "OrderCreated"]
    assert all_events(ada.bearer, secured, streamId=bobs) == []
    everything = all_events(ADMIN, secured)
    assert {ada.user_id, adas, bob.user_id, bobs} <= {e["streamId"] for e in everything}
    assert "UniqueKey" not in {e["streamType"] for e in everything}
    assert all_events(ADMIN, secured, streamType="UniqueKey") == []
    assert code_of_body(answer(secured, None, EVENTS)) == "UNAUTHENTICATED"

    state = "query($id: ID!) { aggregateState(streamId: $id) { streamType version } }"

    def state_of(bearer: str | None, stream_id: str) -> Any:
        return answer(secured, bearer, state, id=stream_id)

    assert state_of(ada.bearer, adas) == {
        "data": {"aggregateState": {"streamType": "Order", "version": 1}}
    }
    nothing = {"data": {"aggregateState": None}}
    assert state_of(ada.bearer, bobs) == state_of(ada.bearer, bob.user_id) == nothing
    assert state_of(ADMIN, bobs)["data"]["aggregateState"]["version"] == 1
    claim = f"user-email:{bob.email}"
    assert state_of(ADMIN, claim) == state_of(bob.bearer, claim) == nothing
    assert code_of_body(state_of(None, adas)) == "UNAUTHENTICATED"


EVENTS_LIVE = """subscription($after: Position) {
  events(after: $after) { position streamId type }
}"""


async def test_the_events_subscription_shows_a_user_only_their_streams_new_ones_too(
    secured: Server,
) -> None:
    ada, bob = someone(secured), someone(secured)
    live = await subscribe(secured, ada.bearer, EVENTS_LIVE)
    caught_up = await subscribe(secured, ada.bearer, EVENTS_LIVE, after=0)
    try:
        await live.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(10):
            assert json.loads(await live.recv())["type"] == "pong"
        # Bob's order first, then a stream Ada creates after she subscribed, then a change to it:
        # Ada gets her own two events, and Bob's (earlier in the feed) never.
        place_order(secured, bob)
        adas, _ = place_order(secured, ada)
        done(mutate(secured, ada.bearer, CANCEL, orderId=adas, reason="no"))
        for socket, expected in (
            (live, [(adas, "OrderCreated"), (adas, "OrderCancelled")]),
            (
                caught_up,
                [
                    (ada.user_id, "UserRegistered"),
                    (adas, "OrderCreated"),
                    (adas, "OrderCancelled"),
                ],
            ),
        ):
            got: list[tuple[str, str]] = []
            async for message in messages(socket):
                assert message["type"] == "next", message
                event = message["payload"]["data"]["events"]
                got.append((event["streamId"], event["type"]))
                if len(got) == len(expected):
                    break
            assert got == expected
    finally:
        await live.close()
        await caught_up.close()
