"""Requests and websocket messages a well-behaved client never sends, against `chronicle serve`.

Each is answered in GraphQL's shape with a 4xx (or closed with its protocol's code), nothing
is logged as an error, and the server's memory stays bounded however many large documents come.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psutil
import pytest
import strawberry.schema.schema
import websockets

from api.schema import build_schema
from api.settings import Settings
from api.view import MAX_QUERY_STRING
from tests.e2e.conftest import Server
from tests.e2e.live import LEGACY_WS, TRANSPORT_WS
from tests.e2e.test_websocket_protocols import close_code, initialised, receive, send

LIMIT = Settings().max_body_bytes
"""The shared server runs with the default limit."""

QUERY = "{ projections { name } }"


def padded(size: int, query: str = QUERY, salt: str = "") -> str:
    """`query` after whitespace (and a comment of `salt`): `size` characters in all."""
    head = f"# {salt}\n" if salt else ""
    return head + " " * (size - len(head) - len(query)) + query


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(autouse=True)
def logs_nothing_above_info(server: Server) -> Iterator[None]:
    """What the server logs while a test runs holds no error, warning or trace."""
    before = len(server.output())
    yield
    logged = server.output()[before:]
    for marker in ("Traceback", " ERROR ", " WARNING ", " CRITICAL "):
        assert marker not in logged, logged


def refused(response: httpx.Response, status: int, code: str) -> str:
    """The message of the GraphQL error a refused request is answered with."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == code, error
    return str(error["message"])


# ---------------------------------------------------------------- sizes


async def test_a_body_over_the_limit_is_refused_413(http: httpx.AsyncClient) -> None:
    body = json.dumps({"query": padded(LIMIT + 1)})
    response = await http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert str(LIMIT) in refused(response, 413, "PAYLOAD_TOO_LARGE")


async def test_a_chunked_body_over_the_limit_is_refused_413(http: httpx.AsyncClient) -> None:
    """No Content-Length: the server counts the chunks as they come."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "'
        for _ in range(LIMIT // 16_384 + 2):
            yield b" " * 16_384
        yield b'{ projections { name } }"}'

    response = await http.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    refused(response, 413, "PAYLOAD_TOO_LARGE")


async def test_a_query_string_over_the_limit_is_refused_414(server: Server) -> None:
    """Sent by hand: httpx refuses to send a URL this long. (Over 64 KiB, uvicorn refuses it
    before the application sees it.)"""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    query = "%7B" + "%20" * (MAX_QUERY_STRING // 3 + 1) + "projections%7Bname%7D%7D"
    writer.write(
        f"GET /graphql?query={query} HTTP/1.1\r\nHost: {host}\r\n"
        "Accept: application/json\r\nConnection: close\r\n\r\n".encode()
    )
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414"), head
    assert json.loads(body)["errors"][0]["extensions"]["code"] == "URI_TOO_LONG"


async def test_a_document_just_under_the_limit_is_served(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json={"query": padded(LIMIT - 100)})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["projections"]


# ---------------------------------------------------------------- malformed bodies


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        pytest.param(b'{"query": "{ projections { name } }\xff\xfe"}', None, 400, id="not-utf8"),
        pytest.param(b'"x"', None, 400, id="a-string"),
        pytest.param(b"1", None, 400, id="a-number"),
        pytest.param(b"null", None, 400, id="null"),
        pytest.param(b"[" * 100_000, None, 400, id="nested-100000-deep"),
        pytest.param(b'{"a":' * 20_000 + b"1" + b"}" * 20_000, None, 400, id="nested-objects"),
        pytest.param(b"", None, 400, id="empty"),
        pytest.param(b"{", None, 400, id="truncated"),
        pytest.param(b'[{"query": "{ projections { name } }"}]', None, 400, id="a-batch"),
        pytest.param(b'{"query": 1}', None, 400, id="query-not-a-string"),
        pytest.param(
            b'{"query": "{ projections { name } }", "variables": []}',
            None,
            400,
            id="variables-not-an-object",
        ),
        pytest.param(b'{"query": "{ projections { name } }"}', "text/plain", 415, id="text-plain"),
        pytest.param(b"query=x", "application/x-www-form-urlencoded", 415, id="a-form"),
    ],
)
async def test_a_malformed_body_is_a_4xx_graphql_error(
    http: httpx.AsyncClient, body: bytes, content_type: str | None, status: int
) -> None:
    headers = {"content-type": content_type or "application/json"}
    response = await http.post("/graphql", content=body, headers=headers)
    code = "BAD_REQUEST" if status == 400 else "UNSUPPORTED_MEDIA_TYPE"
    refused(response, status, code)


async def test_other_refusals_of_the_endpoint_are_graphql_errors_too(
    http: httpx.AsyncClient,
) -> None:
    refused(await http.put("/graphql", json={"query": QUERY}), 405, "METHOD_NOT_ALLOWED")
    api = {"accept": "application/json"}
    response = await http.get("/graphql", params={"query": QUERY, "variables": "{"}, headers=api)
    refused(response, 400, "BAD_REQUEST")
    response = await http.get("/graphql", params={"query": QUERY, "variables": "1"}, headers=api)
    refused(response, 400, "BAD_REQUEST")
    refused(await http.get("/graphql", headers=api), 400, "BAD_REQUEST")
    response = await http.get("/graphql", params={"query": "mutation { x }"}, headers=api)
    refused(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "POST"


# ---------------------------------------------------------------- validation cache and memory


async def test_the_same_document_is_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limiters' rules are built once per schema, so a document's validation is reused."""
    validations = 0
    validate = strawberry.schema.schema.validate

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal validations
        validations += 1
        return validate(*args, **kwargs)

    monkeypatch.setattr(strawberry.schema.schema, "validate", counted)
    schema = build_schema(Settings())
    for _ in range(3):
        result = await schema.execute("{ __typename }")
        assert result.data == {"__typename": "Query"}
    refused = "{ a: __typename " + " ".join(f"a{i}: __typename" for i in range(40)) + " }"
    for _ in range(2):
        result = await schema.execute(refused)
        assert result.errors and "aliases found" in result.errors[0].message
    assert validations == 2


async def test_a_flood_of_unique_large_documents_keeps_memory_bounded(server: Server) -> None:
    """250 documents of 200 kB, each new: the server keeps a bounded share of them (the
    document cache is bounded by bytes), not every one (50 MB and more, as it did)."""
    process = psutil.Process(server.process.pid)
    size = 200_000

    async def flood(client: httpx.AsyncClient, first: int, count: int) -> None:
        for n in range(first, first + count):
            response = await client.post(
                "/graphql", json={"query": padded(size, salt=f"flood {n}")}
            )
            assert response.status_code == 200, response.text

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        await asyncio.gather(*(flood(client, 1_000 * i, 10) for i in range(4)))  # warm up
        before = process.memory_info().rss
        await asyncio.gather(*(flood(client, 10_000 + 1_000 * i, 60) for i in range(4)))
        grown = process.memory_info().rss - before
    assert grown < 32 * 1024 * 1024, f"{grown / 2**20:.0f} MiB kept after 240 documents"


# ---------------------------------------------------------------- websockets


@pytest.mark.parametrize(
    "message",
    [
        pytest.param("[1, 2]", id="an-array"),
        pytest.param("1", id="a-number"),
        pytest.param('"subscribe"', id="a-string"),
        pytest.param("null", id="null"),
        pytest.param("[" * 100_000, id="nested-too-deep"),
        pytest.param('{"type": 1}', id="type-not-a-string"),
        pytest.param('{"type": "subscribe", "id": "1", "payload": "x"}', id="payload-string"),
        pytest.param('{"type": "subscribe", "id": "1", "payload": [1]}', id="payload-array"),
        pytest.param('{"type": "subscribe", "id": "1"}', id="no-payload"),
        pytest.param('{"type": "subscribe", "id": "1", "payload": {}}', id="no-query"),
        pytest.param('{"type": "subscribe", "id": "1", "payload": {"query": 1}}', id="query-1"),
        pytest.param(
            '{"type": "subscribe", "id": "1", "payload": {"query": "{ projections { name } }", '
            '"variables": []}}',
            id="variables-array",
        ),
        pytest.param(
            '{"type": "subscribe", "id": "1", "payload": {"query": "{ projections { name } }", '
            '"operationName": 1}}',
            id="operation-name-1",
        ),
        pytest.param('{"type": "subscribe", "payload": {"query": "{ a }"}}', id="no-id"),
        pytest.param(
            '{"type": "subscribe", "id": [1], "payload": {"query": "{ a }"}}', id="id-list"
        ),
        pytest.param('{"type": "complete", "id": {}}', id="complete-id-object"),
        pytest.param('{"type": "' + "x" * 500 + '"}', id="long-unknown-type"),
    ],
)
async def test_a_malformed_transport_ws_message_closes_4400(server: Server, message: str) -> None:
    async with await initialised(server) as socket:
        await socket.send(message)
        assert await close_code(socket) == 4400


async def test_a_syntax_error_with_a_long_message_closes_4400(server: Server) -> None:
    """The close reason is cut to what a close frame can carry."""
    async with await initialised(server) as socket:
        query = "{ projections { " + "x" * 300 + "(: } }"
        await send(socket, {"type": "subscribe", "id": "1", "payload": {"query": query}})
        assert await close_code(socket) == 4400


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_websocket_message_over_the_limit_closes_1009(
    server: Server, protocol: str
) -> None:
    async with await initialised(server, protocol) as socket:
        query = padded(LIMIT + 1)
        start = "subscribe" if protocol == TRANSPORT_WS else "start"
        await send(socket, {"type": start, "id": "1", "payload": {"query": query}})
        assert await close_code(socket) == 1009


async def legacy_still_answers(socket: websockets.ClientConnection) -> None:
    """The legacy connection is still open and answering."""
    await send(socket, {"type": "no-such-type", "id": "check"})
    reply = await receive(socket)
    assert (reply["type"], reply["id"]) == ("error", "check"), reply


@pytest.mark.parametrize("message", ["this is not JSON", "[1, 2]", "1", "null", "[" * 100_000])
async def test_legacy_a_message_that_is_no_json_object_is_answered_connection_error(
    server: Server, message: str
) -> None:
    async with await initialised(server, LEGACY_WS) as socket:
        await socket.send(message)
        reply = await receive(socket)
        assert reply["type"] == "connection_error", reply
        assert "JSON object" in reply["payload"]["message"]
        await legacy_still_answers(socket)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("x", id="payload-string"),
        pytest.param(None, id="payload-null"),
        pytest.param({}, id="no-query"),
        pytest.param({"query": 1}, id="query-1"),
        pytest.param({"query": QUERY, "variables": [1]}, id="variables-list"),
    ],
)
async def test_legacy_a_malformed_start_is_answered_with_an_error(
    server: Server, payload: object
) -> None:
    async with await initialised(server, LEGACY_WS) as socket:
        await send(socket, {"type": "start", "id": "bad", "payload": payload})
        reply = await receive(socket)
        assert (reply["type"], reply["id"]) == ("error", "bad"), reply
        assert reply["payload"]["extensions"]["code"] == "BAD_MESSAGE"
        await send(socket, {"type": "stop"})
        reply = await receive(socket)
        assert reply["type"] == "error" and "id" not in reply, reply
        await legacy_still_answers(socket)
