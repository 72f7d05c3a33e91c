"""Authentication end to end: a `chronicle serve` that verifies HS256 tokens, called over HTTP and
both websocket protocols; and open mode, which serves loopback only unless turned off on purpose.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from api.auth import mint
from tests.conftest import _admin, _with_database
from tests.e2e.conftest import Server, free_port, start_server, unique_email
from tests.e2e.live import LEGACY_WS, TRANSPORT_WS, raw_socket

SECRET = "an-e2e-secret-that-is-long-enough-for-hs256"
REGISTER = """mutation($input: RegisterUserInput!) {
  registerUser(input: $input) { streamId position events { type metadata } }
}"""
REBUILD = 'mutation { rebuildProjection(name: "users") { name status } }'


def token(subject: str, role: str = "user", ttl: float = 600, secret: str = SECRET) -> str:
    return mint(secret, subject, [role], ttl, iss="https://id.example.com", aud="chronicle")


@pytest.fixture(scope="module")
def secured(
    server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    """A server of its own that requires tokens, on a database of its own."""
    name = template_database.replace("_template", "_auth")
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    url = _with_database(server_url, name)
    log = tmp_path_factory.mktemp("auth") / "serve.log"
    env = {
        "DATABASE_URL": url,
        "LOG_LEVEL": "info",
        "CHRONICLE_JWT_SECRET": SECRET,
        "CHRONICLE_JWT_ISSUER": "https://id.example.com",
        "CHRONICLE_JWT_AUDIENCE": "chronicle",
        "CHRONICLE_WS_INIT_TIMEOUT": "2",
    }
    server = start_server(env, log)
    try:
        yield server, url
    finally:
        server.stop()
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert "Traceback" not in server.output(), server.output()


def post(
    server: Server, document: str, bearer: str | None = None, **variables: Any
) -> httpx.Response:
    headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
    return httpx.post(
        server.graphql_url,
        json={"query": document, "variables": variables},
        headers={**headers, "X-Actor": "someone-else"},
        timeout=30,
    )


def code_of(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["extensions"]["code"])


async def count_events(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM events"))
    finally:
        await connection.close()


async def test_commands_need_a_valid_token_and_write_nothing_without_one(
    secured: tuple[Server, str],
) -> None:
    server, url = secured
    fields = {"email": unique_email(), "name": "Ada", "age": 36}
    before = await count_events(url)
    missing = post(server, REGISTER, input=fields)
    assert missing.status_code == 200 and code_of(missing) == "UNAUTHENTICATED"
    for bad in (
        token("ada", ttl=-10),  # expired
        token("ada", secret="a-different-secret-of-the-same-length!!!"),
        mint(SECRET, "ada", ["user"], 600, iss="https://evil.example.com", aud="chronicle"),
        mint(SECRET, "ada", ["user"], 600, iss="https://id.example.com", aud="other-api"),
        "garbage",
    ):
        refused = post(server, REGISTER, bad, input=fields)
        assert refused.status_code == 401, refused.text
        assert code_of(refused) == "UNAUTHENTICATED"
        assert refused.headers["content-type"].startswith("application/json")
    assert await count_events(url) == before


async def test_the_audit_log_records_the_verified_subject_never_a_header(
    secured: tuple[Server, str],
) -> None:
    server, _ = secured
    response = post(
        server, REGISTER, token("ada-sub"), input={"email": unique_email(), "name": "A", "age": 36}
    )
    events = response.json()["data"]["registerUser"]["events"]
    metadata = next(e for e in events if e["type"] == "UserRegistered")["metadata"]
    assert (metadata["actor"], metadata["roles"]) == ("ada-sub", ["user"])


async def test_only_an_admin_rebuilds_a_read_model(secured: tuple[Server, str]) -> None:
    server, _ = secured
    assert code_of(post(server, REBUILD)) == "UNAUTHENTICATED"
    assert code_of(post(server, REBUILD, token("u"))) == "FORBIDDEN"
    done = post(server, REBUILD, token("root", "admin")).json()
    assert done["data"]["rebuildProjection"]["name"] == "users", done


async def test_queries_still_answer_without_a_token(secured: tuple[Server, str]) -> None:
    server, _ = secured
    assert "errors" not in post(server, "{ products(first: 1) { totalCount } }").json()


SUBSCRIBE = 'subscription { events(streamType: "Nothing") { position } }'


async def _init(socket: websockets.ClientConnection, protocol: str, bearer: str | None) -> None:
    payload = {} if bearer is None else {"authorization": f"Bearer {bearer}"}
    await socket.send(json.dumps({"type": "connection_init", "payload": payload}))


async def _close_code(socket: websockets.ClientConnection, within: float) -> tuple[int, str]:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(within):
            while True:
                await socket.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_bad_token_closes_the_websocket_with_4403(
    secured: tuple[Server, str], protocol: str
) -> None:
    server, _ = secured
    for bad in (token("a", ttl=-10), "garbage"):
        socket = await raw_socket(server, protocol)
        await _init(socket, protocol, bad)
        code, reason = await _close_code(socket, 10)
        assert code == 4403 and "Forbidden" in reason, (code, reason)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_websocket_is_closed_when_its_token_expires(
    secured: tuple[Server, str], protocol: str
) -> None:
    server, _ = secured
    socket = await raw_socket(server, protocol)
    await _init(socket, protocol, token("brief", ttl=2))
    async with asyncio.timeout(10):
        while json.loads(await socket.recv())["type"] != "connection_ack":
            pass
    start = {"id": "1", "payload": {"query": SUBSCRIBE}}
    kind = "subscribe" if protocol == TRANSPORT_WS else "start"
    await socket.send(json.dumps({"type": kind, **start}))
    code, reason = await _close_code(socket, 15)
    assert code == 4403 and "expired" in reason, (code, reason)


async def test_a_good_token_subscribes_over_the_websocket(secured: tuple[Server, str]) -> None:
    server, _ = secured
    socket = await raw_socket(server, TRANSPORT_WS)
    await _init(socket, TRANSPORT_WS, token("watcher"))
    async with asyncio.timeout(10):
        assert json.loads(await socket.recv())["type"] == "connection_ack"
    await socket.send(json.dumps({"type": "ping"}))
    async with asyncio.timeout(10):
        assert json.loads(await socket.recv())["type"] == "pong"
    await socket.close()


# ---------------------------------------------------------------- open mode


def _serve(env: dict[str, str], host: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CHRONICLE_JWT")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--host", host, "--port", str(free_port())],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp,
    )


def test_open_mode_refuses_to_serve_beyond_loopback(tmp_path: Path) -> None:
    refused = _serve({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, "0.0.0.0", tmp_path)
    assert refused.returncode != 0
    assert "CHRONICLE_AUTH=off" in refused.stderr, refused.stderr


def test_open_mode_on_purpose_starts_with_a_warning(
    e2e_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    log = tmp_path_factory.mktemp("open") / "serve.log"
    env = {"DATABASE_URL": e2e_database_url, "CHRONICLE_AUTH": "off", "CHRONICLE_HOST": "0.0.0.0"}
    env["CHRONICLE_RUN_PROJECTIONS"] = "false"
    server = start_server(env, log)
    try:
        answer = httpx.post(server.graphql_url, json={"query": REBUILD}, timeout=30).json()
        assert answer["data"]["rebuildProjection"]["name"] == "users", answer
    finally:
        server.stop()
    assert "authentication is off (open mode)" in server.output()


def test_chronicle_token_mints_what_the_server_verifies(secured: tuple[Server, str]) -> None:
    server, _ = secured
    env = {
        **os.environ,
        "CHRONICLE_JWT_SECRET": SECRET,
        "CHRONICLE_JWT_ISSUER": "https://id.example.com",
        "CHRONICLE_JWT_AUDIENCE": "chronicle",
    }
    minted = subprocess.run(
        [sys.executable, "-m", "api.cli", "token", "--sub", "cli-admin", "--role", "admin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert post(server, REBUILD, minted).json()["data"]["rebuildProjection"]["name"] == "users"
    missing = subprocess.run(
        [sys.executable, "-m", "api.cli", "token", "--sub", "x", "--role", "user"],
        env={k: v for k, v in env.items() if k != "CHRONICLE_JWT_SECRET"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0 and "CHRONICLE_JWT_SECRET" in missing.stderr


# ---------------------------------------------------------------- who may do what

ME = "query($min: Position) { me(minPosition: $min) { id name email } }"
UPDATE = """mutation($input: UpdateUserInput!) {
  updateUser(input: $input) { version events { type } }
}"""
ADD_PRODUCT = """mutation($input: AddProductInput!) { addProduct(input: $input) { streamId } }"""


def register(server: Server, bearer: str, **extra: Any) -> httpx.Response:
    fields = {"email": unique_email(), "name": "Ada", "age": 36, **extra}
    return post(server, REGISTER, bearer, input=fields)


async def test_a_user_is_bound_to_the_subject_that_registered_it(
    secured: tuple[Server, str],
) -> None:
    server, url = secured
    subject = f"sub-{uuid.uuid4().hex[:8]}"
    mine = token(subject)
    assert post(server, ME, mine).json()["data"]["me"] is None  # signed in, not registered
    registered = register(server, mine).json()["data"]["registerUser"]
    user_id = registered["streamId"]
    events = registered["events"]
    assert next(e for e in events if e["type"] == "UserRegistered")["metadata"]["actor"] == subject

    # One user per subject: a second registration is DUPLICATE, with nothing written.
    before = await count_events(url)
    again = register(server, mine)
    assert code_of(again) == "DUPLICATE"
    assert "already has a user" in again.json()["errors"][0]["message"]
    # Registering someone else is for admins.
    assert code_of(register(server, mine, subject="someone-else")) == "FORBIDDEN"
    assert await count_events(url) == before

    me = post(server, ME, mine, min=registered["position"]).json()["data"]["me"]
    assert me["id"] == user_id
    assert post(server, ME).json()["data"]["me"] is None  # anonymous

    # Users update only their own profile; admins any.
    update = {"userId": user_id, "name": "Ada L."}
    assert code_of(post(server, UPDATE, token("a-stranger"), input=update)) == "FORBIDDEN"
    assert code_of(post(server, UPDATE, None, input=update)) == "UNAUTHENTICATED"
    assert await count_events(url) == before
    own = post(server, UPDATE, mine, input=update).json()["data"]["updateUser"]
    assert own["events"] == [{"type": "UserUpdated"}]
    admin = post(server, UPDATE, token("root", "admin"), input={**update, "name": "Ada Lovelace"})
    assert admin.json()["data"]["updateUser"]["events"] == [{"type": "UserUpdated"}]


async def test_an_admin_registers_on_behalf_of_a_subject(secured: tuple[Server, str]) -> None:
    server, _ = secured
    subject = f"sub-{uuid.uuid4().hex[:8]}"
    made = register(server, token("root", "admin"), subject=subject).json()["data"]["registerUser"]
    me = post(server, ME, token(subject), min=made["position"]).json()["data"]["me"]
    assert me["id"] == made["streamId"]


async def test_the_catalog_and_shipping_are_for_admins(secured: tuple[Server, str]) -> None:
    server, url = secured
    product = {"sku": f"SKU-{uuid.uuid4().hex[:8]}", "name": "Lamp", "priceCents": 100}
    before = await count_events(url)
    assert code_of(post(server, ADD_PRODUCT, token("u"), input=product)) == "FORBIDDEN"
    assert code_of(post(server, ADD_PRODUCT, None, input=product)) == "UNAUTHENTICATED"
    ship = 'mutation { shipOrder(input: {orderId: "o", carrier: "UPS", trackingNumber: "1"}) { version } }'
    assert code_of(post(server, ship, token("u"))) == "FORBIDDEN"
    assert await count_events(url) == before
    added = post(server, ADD_PRODUCT, token("root", "admin"), input=product).json()
    assert added["data"]["addProduct"]["streamId"]


def mutate(server: Server, bearer: str | None, mutation: str, /, **fields: Any) -> httpx.Response:
    input_type = mutation[0].upper() + mutation[1:] + "Input"
    document = (
        f"mutation($input: {input_type}!) {{ {mutation}(input: $input) "
        "{ streamId position events { type data } } }"
    )
    return post(server, document, bearer, input=fields)


def done(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert "errors" not in body, body
    return dict(next(iter(body["data"].values())))


async def test_users_act_only_as_themselves_on_orders_posts_and_reviews(
    secured: tuple[Server, str],
) -> None:
    server, url = secured
    ada, bob = token(f"ada-{uuid.uuid4().hex[:6]}"), token(f"bob-{uuid.uuid4().hex[:6]}")
    ada_id = done(register(server, ada))["streamId"]
    bob_id = done(register(server, bob))["streamId"]
    admin = token("root", "admin")
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    product = done(mutate(server, admin, "addProduct", sku=sku, name="Lamp", priceCents=100))
    address = {"line1": "1 Main St", "city": "Springfield", "postalCode": "1", "country": "US"}

    order = done(mutate(server, ada, "createOrder", customerId=ada_id, shippingAddress=address))
    post_ = done(mutate(server, ada, "createPost", authorId=ada_id, message="Hello"))
    comment = done(
        mutate(server, bob, "addComment", postId=post_["streamId"], authorId=bob_id, text="Hi")
    )
    comment_id = comment["events"][0]["data"]["comment_id"]
    before = await count_events(url)
    refused: list[tuple[str, dict[str, Any], str]] = [
        ("createOrder", {"customerId": ada_id, "shippingAddress": address}, "FORBIDDEN"),
        (
            "addLineItem",
            {"orderId": order["streamId"], "productId": product["streamId"], "quantity": 1},
            "NOT_FOUND",
        ),
        ("placeOrder", {"orderId": order["streamId"]}, "NOT_FOUND"),
        ("cancelOrder", {"orderId": order["streamId"], "reason": "mine now"}, "NOT_FOUND"),
        ("createPost", {"authorId": ada_id, "message": "I am Ada"}, "FORBIDDEN"),
        ("editPost", {"postId": post_["streamId"], "message": "Defaced"}, "FORBIDDEN"),
        ("deletePost", {"postId": post_["streamId"]}, "FORBIDDEN"),
        ("likePost", {"postId": post_["streamId"], "userId": ada_id}, "FORBIDDEN"),
        ("addComment", {"postId": post_["streamId"], "authorId": ada_id, "text": "x"}, "FORBIDDEN"),
        (
            "reviewProduct",
            {"productId": product["streamId"], "userId": ada_id, "rating": 1, "text": "Bad"},
            "FORBIDDEN",
        ),
    ]
    for name, fields, code in refused:
        assert code_of(mutate(server, bob, name, **fields)) == code, (name, fields)
    # Ada may not remove Bob's comment on her post either: a comment is its author's.
    removal = {"postId": post_["streamId"], "commentId": comment_id}
    assert code_of(mutate(server, ada, "removeComment", **removal)) == "FORBIDDEN"
    assert await count_events(url) == before

    # Each as themselves: all fine; and an admin may act for anyone.
    done(mutate(server, bob, "likePost", postId=post_["streamId"], userId=bob_id))
    done(mutate(server, ada, "editPost", postId=post_["streamId"], message="Hello, world"))
    done(mutate(server, bob, "removeComment", **removal))
    done(
        mutate(
            server,
            bob,
            "reviewProduct",
            productId=product["streamId"],
            userId=bob_id,
            rating=5,
            text="Bright",
        )
    )
    done(mutate(server, admin, "cancelOrder", orderId=order["streamId"], reason="support"))


async def test_a_legacy_connection_cannot_change_its_identity_with_a_second_init(
    secured: tuple[Server, str],
) -> None:
    server, _ = secured
    socket = await raw_socket(server, LEGACY_WS)
    await _init(socket, LEGACY_WS, token("first-user"))
    async with asyncio.timeout(10):
        while json.loads(await socket.recv())["type"] != "connection_ack":
            pass
    await _init(socket, LEGACY_WS, token("root", "admin"))
    async with asyncio.timeout(10):
        while (reply := json.loads(await socket.recv()))["type"] == "ka":
            pass
    assert reply["type"] == "connection_error", reply
    assert "initialised already" in reply["payload"]["message"]
    await socket.close()


async def test_a_command_id_is_no_key_to_another_callers_result(
    secured: tuple[Server, str],
) -> None:
    """The same request under the same commandId replays for its sender only: to anyone else
    it is DUPLICATE, naming nothing of the first."""
    server, url = secured
    ada = token(f"ada-{uuid.uuid4().hex[:6]}")
    command_id = f"cmd-{uuid.uuid4()}"
    fields = {"email": unique_email(), "name": "Ada", "age": 36, "commandId": command_id}
    first = done(post(server, REGISTER, ada, input=fields))
    again = post(server, REGISTER, ada, input=fields).json()["data"]["registerUser"]
    assert again["streamId"] == first["streamId"]
    before = await count_events(url)
    for other in (token(f"eve-{uuid.uuid4().hex[:6]}"), token("root", "admin")):
        stolen = post(server, REGISTER, other, input=fields)
        assert code_of(stolen) == "DUPLICATE", stolen.text
        assert first["streamId"] not in stolen.text and fields["email"] not in stolen.text
    assert await count_events(url) == before
