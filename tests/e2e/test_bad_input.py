"""Hostile input end to end: VALIDATION_FAILED, nothing written, nothing logged above INFO,
and no client value echoed at length."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from projections.pagination import MAX_SEARCH_LENGTH, MAX_SEARCH_WORDS
from tests.e2e.conftest import Server, unique_email

ABOVE_INFO = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")

REGISTER = """
mutation Register($input: RegisterUserInput!) { registerUser(input: $input) { version } }
"""
UPDATE = """
mutation Update($input: UpdateUserInput!) { updateUser(input: $input) { version } }
"""
USER = "query User($id: ID!) { user(id: $id) { id } }"
USERS = """
query Users($search: String, $after: String) {
  users(search: $search, after: $after, first: 5) { totalCount }
}
"""
PRODUCTS = """
query Products($search: String, $after: String) {
  products(search: $search, after: $after, first: 5) { totalCount }
}
"""
EVENTS = "query Events($after: Position, $types: [String!]) { events(after: $after, types: $types) { position } }"
SUMMARY = "query Summary($min: Position) { userSummary(minPosition: $min) { totalUsers } }"
STATE = "query State($id: ID!, $asOf: DateTime) { aggregateState(streamId: $id, asOf: $asOf) { version } }"


class Api:
    """Raw JSON over HTTP: the exact text hostile clients send, and the exact answer."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        body = json.dumps({"query": query, "variables": variables or {}})
        return await self.http.post(
            self.url, content=body, headers={"content-type": "application/json"}
        )

    async def refusal(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The one error a refused request is answered with (its field, if any, is null)."""
        response = await self.post(query, variables)
        answer = response.json()
        assert not any((answer.get("data") or {}).values()), answer
        (error,) = answer["errors"]
        return dict(error)


@pytest.fixture
async def api(server: Server) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(timeout=60) as http:
        yield Api(http, server.graphql_url)


@pytest.fixture
def quiet_log(server: Server) -> Iterator[None]:
    """The server logs nothing above INFO while the test runs."""
    before = len(server.output())
    yield
    time.sleep(0.2)  # the server is another process: let its log reach the file
    written = server.output()[before:]
    assert not ABOVE_INFO.search(written), written[:5000]


async def count_events(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events"))


def code(error: dict[str, Any]) -> str:
    return str((error.get("extensions") or {}).get("code"))


async def registered_user(api: Api) -> str:
    response = await api.post(
        "mutation R($input: RegisterUserInput!) { registerUser(input: $input) { streamId } }",
        {"input": {"email": unique_email(), "name": "Ada", "age": 30}},
    )
    return str(response.json()["data"]["registerUser"]["streamId"])


# ------------------------------------------------------------------ NUL and lone surrogates


NUL = "\x00"
SURROGATE = "\ud800"


def hostile_requests(bad: str, user_id: str) -> list[tuple[str, dict[str, Any] | None, str]]:
    """(document, variables, the argument the refusal names) for every kind of input."""
    escaped = json.dumps(bad)[1:-1]  # as a GraphQL string literal escape, e.g. \\u0000
    good = {"email": unique_email(), "name": "Ada", "age": 30}
    return [
        # an id argument, by variable and inline
        (USER, {"id": f"user{bad}"}, "$id"),
        (f'{{ user(id: "u{escaped}") {{ id }} }}', None, "id"),
        # a field of an input object, by variable and inline
        (REGISTER, {"input": {**good, "name": f"Ada{bad}"}}, "$input.name"),
        (REGISTER, {"input": {**good, "email": f"a{bad}@example.com"}}, "$input.email"),
        (
            'mutation { registerUser(input: {email: "a'
            + escaped
            + '@example.com", name: "Ada", age: 30}) { version } }',
            None,
            "input.email",
        ),
        (UPDATE, {"input": {"userId": user_id, "name": f"Ada{bad}"}}, "$input.name"),
        (UPDATE, {"input": {"userId": f"{user_id}{bad}", "age": 31}}, "$input.userId"),
        (REGISTER, {"input": {**good, "commandId": f"c{bad}"}}, "$input.commandId"),
        # a query argument, by variable and inline; a list element
        (USERS, {"search": f"ada{bad}"}, "$search"),
        (f'{{ products(search: "a{escaped}") {{ totalCount }} }}', None, "search"),
        (EVENTS, {"types": ["UserRegistered", f"X{bad}"]}, "$types[1]"),
        (STATE, {"id": f"{user_id}{bad}"}, "$id"),
        # a variable's default value
        (
            f'query D($s: String = "a{escaped}") {{ users(search: $s) {{ totalCount }} }}',
            None,
            "$s",
        ),
    ]


@pytest.mark.usefixtures("quiet_log")
async def test_nul_anywhere_is_refused_and_writes_nothing(api: Api, db: asyncpg.Connection) -> None:
    user_id = await registered_user(api)
    before = await count_events(db)
    for document, variables, argument in hostile_requests(NUL, user_id):
        error = await api.refusal(document, variables)
        assert code(error) == "VALIDATION_FAILED", (argument, error)
        assert argument in error["message"] and "NUL" in error["message"], error
    assert await count_events(db) == before


@pytest.mark.usefixtures("quiet_log")
async def test_lone_surrogates_are_refused_and_write_nothing(
    api: Api, db: asyncpg.Connection
) -> None:
    user_id = await registered_user(api)
    before = await count_events(db)
    for document, variables, argument in hostile_requests(SURROGATE, user_id):
        error = await api.refusal(document, variables)
        assert code(error) == "VALIDATION_FAILED", (argument, error)
        if variables is not None:  # a literal's escape is already a syntax error
            assert argument in error["message"] and "surrogate" in error["message"], error
    assert await count_events(db) == before


# ------------------------------------------------------------------ positions and cursors


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize(
    "position", ["²", "1²", "١٢", "１２", "9" * 30, str(2**63), "-1", " ", "1e3", "0x10"]
)
async def test_a_position_is_ascii_digits_within_bigint(api: Api, position: str) -> None:
    for document in (EVENTS, SUMMARY):
        name = "after" if document is EVENTS else "min"
        error = await api.refusal(document, {name: position})
        assert code(error) == "VALIDATION_FAILED", error


def cursor_of(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


ODD_CURSORS = [
    cursor_of(["0001-01-01T00:00:00+14:00", "x"]),
    cursor_of(["9999-12-31T23:59:59-14:00", "x"]),
    cursor_of(["0000-01-01T00:00:00+00:00", "x"]),
    cursor_of(["99999-01-01T00:00:00+00:00", "x"]),
    cursor_of(["2026-01-01T00:00:00+00:00", {"id": ["nested"]}]),
    cursor_of([["2026-01-01T00:00:00+00:00"], "x"]),
    cursor_of(["2026-01-01T00:00:00+00:00", "x\x00"]),
    cursor_of(["2026-01-01T00:00:00+00:00", 10**300]),
    base64.urlsafe_b64encode(b"[" * 5000).decode(),
    base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00", ' + b"9" * 5000 + b"]").decode(),
    "not base64 at all",
]


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize("cursor", ODD_CURSORS)
async def test_an_odd_cursor_is_an_invalid_cursor(api: Api, cursor: str) -> None:
    for document in (USERS, PRODUCTS):
        error = await api.refusal(document, {"after": cursor})
        assert code(error) == "VALIDATION_FAILED", error
        assert error["message"] == "invalid cursor"


@pytest.mark.usefixtures("quiet_log")
async def test_an_instant_beyond_utc_is_refused(api: Api) -> None:
    user_id = await registered_user(api)
    for moment in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        error = await api.refusal(STATE, {"id": user_id, "asOf": moment})
        assert code(error) == "VALIDATION_FAILED", error


# ------------------------------------------------------------------ search


@pytest.mark.usefixtures("quiet_log")
async def test_a_search_beyond_its_limits_is_refused(api: Api, server: Server) -> None:
    for document in (USERS, PRODUCTS):
        words = " ".join(["ada"] * (MAX_SEARCH_WORDS + 1))
        error = await api.refusal(document, {"search": words})
        assert code(error) == "VALIDATION_FAILED"
        assert f"{MAX_SEARCH_WORDS} words" in error["message"]

        error = await api.refusal(document, {"search": "a" * (MAX_SEARCH_LENGTH + 1)})
        assert code(error) == "VALIDATION_FAILED"
        assert f"{MAX_SEARCH_LENGTH} characters" in error["message"]

        ok = await api.post(document, {"search": " ".join(["ada"] * MAX_SEARCH_WORDS)})
        assert "errors" not in ok.json(), ok.json()

        # some 18,700 words (37 KB) made a tsquery too deep for PostgreSQL's stack
        before = len(server.output())
        started = time.monotonic()
        error = await api.refusal(document, {"search": "ada " * 9_350 + "love " * 9_350})
        assert code(error) == "VALIDATION_FAILED"
        assert time.monotonic() - started < 5
        assert len(error["message"]) < 200
        assert len(server.output()) - before < 2_000  # never the request's text in the log


@pytest.mark.usefixtures("quiet_log")
async def test_a_huge_search_is_refused_quickly(api: Api, server: Server) -> None:
    before = len(server.output())
    started = time.monotonic()
    response = await api.post(USERS, {"search": "ada " * 2_500_000})  # 10 MB
    assert time.monotonic() - started < 10
    if response.status_code == 200:
        (error,) = response.json()["errors"]
        assert code(error) == "VALIDATION_FAILED"
    else:
        assert response.status_code == 413  # the body limit comes first
    assert len(response.content) < 2_000
    assert len(server.output()) - before < 2_000


# ------------------------------------------------------------------ echoes


@pytest.mark.usefixtures("quiet_log")
async def test_an_invalid_email_is_quoted_by_a_short_prefix(
    api: Api, db: asyncpg.Connection
) -> None:
    before = await count_events(db)
    email = "not-an-email-" + "x" * 200_000
    response = await api.post(REGISTER, {"input": {"email": email, "name": "Ada", "age": 30}})
    (error,) = response.json()["errors"]
    assert code(error) == "VALIDATION_FAILED"
    assert "not-an-email-" in error["message"]
    assert len(response.content) < 1_000
    assert await count_events(db) == before


@pytest.mark.usefixtures("quiet_log")
async def test_an_unknown_long_user_id_is_quoted_by_a_short_prefix(api: Api) -> None:
    response = await api.post(UPDATE, {"input": {"userId": "u" * 200_000, "age": 30}})
    (error,) = response.json()["errors"]
    assert code(error) == "NOT_FOUND"
    assert len(response.content) < 1_000
