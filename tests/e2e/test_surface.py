"""A production surface that shows no more than it must, end to end: trusted documents over HTTP
and both websocket protocols, introspection for admins, GraphiQL only when asked for, and the
security headers on every response.

Two servers that require tokens share a database of their own: `trusted` runs with a manifest
made by `chronicle documents hash` (introspection and GraphiQL at their defaults: off);
`public` has no manifest, CHRONICLE_INTROSPECTION=public and CHRONICLE_GRAPHIQL=true. The
shared e2e server is the open mode one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from api.auth import mint
from api.playground import CONTENT_SECURITY_POLICY
from tests.conftest import _admin, _with_database
from tests.e2e.conftest import Server, free_port, start_server, unique_email
from tests.e2e.live import LEGACY_WS, TRANSPORT_WS, raw_socket

SECRET = "a-surface-secret-that-is-long-enough-for-hs256"

PRODUCTS = "query Products { products(first: 1) { totalCount } }\n"
REGISTER = """mutation Register($input: RegisterUserInput!) {
  registerUser(input: $input) { streamId position }
}
"""
UPDATE = """mutation Update($input: UpdateUserInput!) {
  updateUser(input: $input) { position }
}
"""
EVENTS = """subscription Events($after: Position) {
  events(after: $after) { streamId type }
}
"""
SCHEMA = "query Schema { __schema { queryType { name } } }\n"
TYPE = 'query Type { __type(name: "User") { name fields { name } } }\n'
TYPENAME = "query Typename { __typename }\n"
TRUSTED = {
    "products": PRODUCTS,
    "register": REGISTER,
    "update": UPDATE,
    "events": EVENTS,
    "schema": SCHEMA,
    "type": TYPE,
    "typename": TYPENAME,
}

RAW_REGISTER = """mutation($input: RegisterUserInput!) {
  registerUser(input: $input) { streamId }
}"""
RAW_EVENTS = "subscription { events { streamId } }"

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def token(subject: str, role: str = "user") -> str:
    return mint(SECRET, subject, [role], 600)


USER = token("surface-user")
ADMIN = token("surface-admin", "admin")


@dataclass
class Surface:
    trusted: Server
    public: Server
    database_url: str


def hash_documents(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "documents", "hash", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifest `chronicle documents hash` prints for TRUSTED's files."""
    folder = tmp_path_factory.mktemp("documents")
    files = []
    for name, text in TRUSTED.items():
        files.append(folder / f"{name}.graphql")
        files[-1].write_text(text)
    made = hash_documents(*files)
    assert made.returncode == 0, made.stderr
    path = folder / "manifest.json"
    path.write_text(made.stdout)
    return path


@pytest.fixture(scope="module")
def surface(
    server_url: str,
    template_database: str,
    manifest: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Surface]:
    name = template_database.replace("_template", "_surface")
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    url = _with_database(server_url, name)
    logs = tmp_path_factory.mktemp("surface")
    env = {
        "DATABASE_URL": url,
        "LOG_LEVEL": "info",
        "CHRONICLE_JWT_SECRET": SECRET,
        "CHRONICLE_WS_INIT_TIMEOUT": "2",
    }
    servers: list[Server] = []
    try:
        servers.append(
            start_server({**env, "CHRONICLE_TRUSTED_DOCUMENTS": str(manifest)}, logs / "t.log")
        )
        public_env = {
            **env,
            "CHRONICLE_INTROSPECTION": "public",
            "CHRONICLE_GRAPHIQL": "true",
            "CHRONICLE_RUN_PROJECTIONS": "false",
        }
        servers.append(start_server(public_env, logs / "p.log"))
        yield Surface(trusted=servers[0], public=servers[1], database_url=url)
    finally:
        for server in servers:
            server.stop()
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    for server in servers:
        assert "Traceback" not in server.output(), server.output()
    assert f"trusted documents: {len(TRUSTED)} from" in servers[0].output()


def send(server: Server, bearer: str | None = None, **fields: Any) -> dict[str, Any]:
    """POST a request of these fields (query, documentId, variables, extensions)."""
    headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
    response = httpx.post(server.graphql_url, json=fields, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def get(server: Server, bearer: str | None = None, **params: str) -> dict[str, Any]:
    """GET a request of these query parameters, as a client (not a browser) does."""
    headers = {"Accept": "*/*"} | ({} if bearer is None else {"Authorization": f"Bearer {bearer}"})
    response = httpx.get(server.graphql_url, params=params, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def code_of(answer: dict[str, Any]) -> str:
    assert answer.get("data") is None, answer
    return str(answer["errors"][0]["extensions"]["code"])


def persisted(text: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha(text)}}


async def count_events(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM events"))
    finally:
        await connection.close()


def register_input(subject: str | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"email": unique_email("surface"), "name": "Ada", "age": 36}
    if subject is not None:
        fields["subject"] = subject
    return {"input": fields}


# ---------------------------------------------------------------- trusted documents over HTTP


async def test_a_user_runs_trusted_documents_by_id_and_by_persisted_query_hash(
    surface: Surface,
) -> None:
    server = surface.trusted
    for fields in (
        {"documentId": f"sha256:{sha(PRODUCTS)}"},
        {"documentId": sha(PRODUCTS)},
        {"extensions": persisted(PRODUCTS)},
        {"query": PRODUCTS},  # the text itself is in the manifest too
        {"query": PRODUCTS, "extensions": persisted(PRODUCTS)},
    ):
        answer = send(server, USER, **fields)
        assert "errors" not in answer and answer["data"]["products"]["totalCount"] >= 0, fields
    by_get = get(server, USER, documentId=f"sha256:{sha(PRODUCTS)}")
    assert "errors" not in by_get and by_get["data"]["products"], by_get
    # A trusted mutation writes as any other.
    before = await count_events(surface.database_url)
    subject = f"trusted-{uuid.uuid4().hex[:8]}"
    done = send(server, token(subject), documentId=sha(REGISTER), variables=register_input())
    assert done["data"]["registerUser"]["streamId"], done
    assert await count_events(surface.database_url) > before


async def test_a_document_not_in_the_manifest_is_refused_to_users_and_writes_nothing(
    surface: Surface,
) -> None:
    server, url = surface.trusted, surface.database_url
    before = await count_events(url)
    user = token(f"raw-{uuid.uuid4().hex[:8]}")
    refused = send(server, user, query=RAW_REGISTER, variables=register_input())
    assert code_of(refused) == "TRUSTED_DOCUMENT_REQUIRED"
    assert "documentId" in refused["errors"][0]["message"]
    # Anonymous callers, GET requests and texts differing by a space are refused the same way.
    assert code_of(send(server, None, query=RAW_REGISTER, variables=register_input())) == (
        "TRUSTED_DOCUMENT_REQUIRED"
    )
    assert code_of(send(server, user, query=PRODUCTS.strip())) == "TRUSTED_DOCUMENT_REQUIRED"
    by_get = get(server, user, query="{ products(first: 1) { totalCount } }")
    assert code_of(by_get) == "TRUSTED_DOCUMENT_REQUIRED"
    assert await count_events(url) == before


async def test_an_admin_sends_any_document(surface: Surface) -> None:
    server, url = surface.trusted, surface.database_url
    before = await count_events(url)
    subject = f"for-{uuid.uuid4().hex[:8]}"
    done = send(server, ADMIN, query=RAW_REGISTER, variables=register_input(subject))
    assert done["data"]["registerUser"]["streamId"], done
    assert await count_events(url) > before
    assert "errors" not in send(server, ADMIN, query="{ products(first: 2) { totalCount } }")


async def test_an_id_of_no_manifest_document_is_not_found(surface: Surface) -> None:
    server = surface.trusted
    unknown = "{ products(first: 3) { totalCount } }"
    for bearer in (USER, ADMIN, None):
        answer = send(server, bearer, documentId=f"sha256:{sha(unknown)}")
        assert code_of(answer) == "PERSISTED_QUERY_NOT_FOUND", answer
        assert code_of(send(server, bearer, extensions=persisted(unknown))) == (
            "PERSISTED_QUERY_NOT_FOUND"
        )
    # An APQ client then sends the text with its hash: an admin's runs, a user's does not.
    assert "errors" not in send(server, ADMIN, query=unknown, extensions=persisted(unknown))
    retried = send(server, USER, query=unknown, extensions=persisted(unknown))
    assert code_of(retried) == "TRUSTED_DOCUMENT_REQUIRED"
    # An id that does not match the text sent with it, or is malformed: VALIDATION_FAILED.
    mismatched = send(server, ADMIN, query=unknown, documentId=sha(PRODUCTS))
    assert code_of(mismatched) == "VALIDATION_FAILED"
    assert code_of(send(server, USER, documentId="md5:abc")) == "VALIDATION_FAILED"


async def test_without_a_manifest_anyone_sends_any_document(surface: Surface) -> None:
    answer = send(surface.public, USER, query="{ products(first: 4) { totalCount } }")
    assert "errors" not in answer, answer


# ---------------------------------------------------------------- trusted documents over websockets


async def _open(protocol: str, server: Server, bearer: str) -> websockets.ClientConnection:
    socket = await raw_socket(server, protocol)
    payload = {"Authorization": f"Bearer {bearer}"}
    await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
    async with asyncio.timeout(10):
        while json.loads(await socket.recv())["type"] != "connection_ack":
            pass
    return socket


async def _start(
    socket: websockets.ClientConnection, protocol: str, id_: str, payload: dict[str, Any]
) -> None:
    kind = "subscribe" if protocol == TRANSPORT_WS else "start"
    await socket.send(json.dumps({"type": kind, "id": id_, "payload": payload}))


async def _message(socket: websockets.ClientConnection, id_: str) -> dict[str, Any]:
    """The next message of operation `id_` (keep-alives and others' skipped)."""
    async with asyncio.timeout(15):
        while True:
            message = json.loads(await socket.recv())
            if message.get("id") == id_:
                return dict(message)


def _error_code(message: dict[str, Any]) -> str:
    assert message["type"] == "error", message
    payload = message["payload"]
    first = payload[0] if isinstance(payload, list) else payload
    return str(first["extensions"]["code"])


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
@pytest.mark.parametrize("named_by", ["documentId", "persistedQuery"])
async def test_a_user_subscribes_to_a_trusted_document_by_id_over_a_websocket(
    surface: Surface, protocol: str, named_by: str
) -> None:
    server = surface.trusted
    user = token(f"ws-{uuid.uuid4().hex[:8]}")
    registered = send(server, user, documentId=sha(REGISTER), variables=register_input())
    user_id = registered["data"]["registerUser"]["streamId"]
    after = registered["data"]["registerUser"]["position"]

    socket = await _open(protocol, server, user)
    try:
        # Refused: a text of no manifest entry, an id of none; the connection stays open.
        await _start(socket, protocol, "raw", {"query": RAW_EVENTS})
        assert _error_code(await _message(socket, "raw")) == "TRUSTED_DOCUMENT_REQUIRED"
        await _start(socket, protocol, "unknown", {"documentId": sha(RAW_EVENTS)})
        assert _error_code(await _message(socket, "unknown")) == "PERSISTED_QUERY_NOT_FOUND"

        named: dict[str, Any] = (
            {"documentId": f"sha256:{sha(EVENTS)}"}
            if named_by == "documentId"
            else {"extensions": persisted(EVENTS)}
        )
        await _start(socket, protocol, "live", {**named, "variables": {"after": after}})
        updated = send(
            server,
            user,
            documentId=sha(UPDATE),
            variables={"input": {"userId": user_id, "name": "Ada L."}},
        )
        assert "errors" not in updated, updated
        while True:
            message = await _message(socket, "live")
            assert message["type"] in ("next", "data"), message
            event = message["payload"]["data"]["events"]
            if event == {"streamId": user_id, "type": "UserUpdated"}:
                break
    finally:
        await socket.close()


async def test_an_admin_subscribes_with_any_document_over_a_websocket(surface: Surface) -> None:
    socket = await _open(TRANSPORT_WS, surface.trusted, ADMIN)
    try:
        await _start(socket, TRANSPORT_WS, "1", {"query": "{ products(first: 1) { totalCount } }"})
        message = await _message(socket, "1")
        assert message["type"] == "next" and "errors" not in message["payload"], message
    finally:
        await socket.close()


# ---------------------------------------------------------------- introspection


async def test_introspection_is_for_admins_unless_made_public(surface: Surface) -> None:
    server = surface.trusted
    for text in (SCHEMA, TYPE):
        for bearer in (USER, None):
            refused = send(server, bearer, documentId=sha(text))
            assert code_of(refused) == "FORBIDDEN", refused
            assert "admins only" in refused["errors"][0]["message"]
        admitted = send(server, ADMIN, documentId=sha(text))
        assert "errors" not in admitted and admitted["data"], admitted
    assert send(server, USER, documentId=sha(TYPENAME)) == {"data": {"__typename": "Query"}}
    # CHRONICLE_INTROSPECTION=public: anyone, signed in or not.
    for bearer in (USER, None):
        answer = send(surface.public, bearer, query=SCHEMA)
        assert answer == {"data": {"__schema": {"queryType": {"name": "Query"}}}}, answer


async def test_introspection_over_a_websocket_is_for_admins_too(surface: Surface) -> None:
    socket = await _open(TRANSPORT_WS, surface.trusted, USER)
    try:
        await _start(socket, TRANSPORT_WS, "1", {"documentId": sha(SCHEMA)})
        assert _error_code(await _message(socket, "1")) == "FORBIDDEN"
    finally:
        await socket.close()


# ---------------------------------------------------------------- GraphiQL and headers


def browser_get(server: Server, path: str = "/graphql") -> httpx.Response:
    return httpx.get(
        f"{server.url}{path}", headers={"Accept": "text/html"}, timeout=30, follow_redirects=False
    )


def test_graphiql_is_served_in_open_mode_and_when_asked_for_only(
    surface: Surface, server: Server
) -> None:
    absent = browser_get(surface.trusted)
    assert absent.status_code == 404, absent.text
    assert absent.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    for serving in (server, surface.public):  # open mode; CHRONICLE_GRAPHIQL=true
        page = browser_get(serving)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "graphiql" in page.text.lower()


def test_every_response_carries_the_security_headers(surface: Surface, server: Server) -> None:
    secured = surface.trusted
    responses = {
        "graphql": httpx.post(secured.graphql_url, json={"query": PRODUCTS}, timeout=30),
        "health": httpx.get(f"{secured.url}/health", timeout=30),
        "redirect": browser_get(secured, "/"),
        "bad token": httpx.post(
            secured.graphql_url,
            json={"query": PRODUCTS},
            headers={"Authorization": "Bearer garbage"},
            timeout=30,
        ),
        "media type": httpx.post(secured.graphql_url, content=b"{}", timeout=30),
        "no graphiql": browser_get(secured),
        "no route": httpx.get(f"{secured.url}/nowhere", timeout=30),
        "graphiql": browser_get(server),
        "open mode": httpx.post(server.graphql_url, json={"query": "{ __typename }"}, timeout=30),
    }
    statuses = {name: response.status_code for name, response in responses.items()}
    assert statuses == {
        "graphql": 200,
        "health": 200,
        "redirect": 307,
        "bad token": 401,
        "media type": 415,
        "no graphiql": 404,
        "no route": 404,
        "graphiql": 200,
        "open mode": 200,
    }
    for name, response in responses.items():
        headers = {key: response.headers.get(key) for key in SECURITY_HEADERS}
        expected = dict(SECURITY_HEADERS)
        if name == "graphiql":  # the playground's own policy, which the middleware keeps
            expected["content-security-policy"] = CONTENT_SECURITY_POLICY
        assert headers == expected, name


# ---------------------------------------------------------------- the manifest at start


def _serve(manifest: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CHRONICLE_")}
    environment.update(
        {
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "CHRONICLE_TRUSTED_DOCUMENTS": str(manifest),
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(free_port())],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp,
    )


def test_a_missing_or_tampered_manifest_stops_the_start(tmp_path: Path) -> None:
    missing = _serve(tmp_path / "nowhere.json", tmp_path)
    assert missing.returncode != 0
    assert "nowhere.json does not exist" in missing.stderr, missing.stderr

    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({sha(PRODUCTS): "{ users(first: 100) { totalCount } }"}))
    refused = _serve(tampered, tmp_path)
    assert refused.returncode != 0
    assert "is not the sha256 of its document" in refused.stderr, refused.stderr


def test_documents_hash_refuses_a_file_the_schema_does_not_validate(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.graphql", tmp_path / "bad.graphql"
    good.write_text(PRODUCTS)
    bad.write_text("query { nope }")
    refused = hash_documents(good, bad)
    assert refused.returncode != 0 and refused.stdout == ""
    assert "bad.graphql: Cannot query field 'nope'" in refused.stderr, refused.stderr
    assert json.loads(hash_documents(good).stdout) == {sha(PRODUCTS): PRODUCTS}
