"""GraphQL over HTTP as the spec says, end to end: the spec's own conformance suite (graphql-http's
`auditServer`, run by node) against `chronicle serve`, and what it does not audit: the status of
each refusal in application/graphql-response+json, GET for queries only, and every failure a
GraphQL JSON body with a code.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from api.settings import Settings
from api.trusted import document_hash
from tests.conftest import _admin, _with_database
from tests.e2e.conftest import Server, start_server
from tests.e2e.node_clients import audit
from tests.e2e.test_auth import SECRET, token

GRAPHQL_RESPONSE = "application/graphql-response+json"
SPEC = {"Accept": GRAPHQL_RESPONSE}
LEGACY = {"Accept": "application/json"}
QUERY = "{ projections { name } }"


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


def answer(response: httpx.Response, status: int, media: str = GRAPHQL_RESPONSE) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == media, response.headers
    body: dict[str, Any] = response.json()
    return body


def request_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """A request error in application/graphql-response+json: no `data`, coded errors."""
    body = answer(response, status)
    assert "data" not in body, body
    assert body["errors"][0]["extensions"]["code"] == code, body
    return body


def test_the_graphql_over_http_audit_passes_without_a_warning(server: Server) -> None:
    results = audit(server.graphql_url)
    failed = [r for r in results if r["status"] != "ok"]
    counts = {s: sum(r["status"] == s for r in results) for s in ("ok", "notice", "warn", "error")}
    print(f"graphql-http audit of {len(results)}: {counts}")
    assert len(results) >= 61, results
    assert not failed, "\n".join(
        f"{r['status']} {r['id']} {r['name']}: {r['reason']}\n  {json.dumps(r['response'])}"
        for r in failed
    )


# ---------------------------------------------------------------- media types


async def test_the_media_type_follows_accept(http: httpx.AsyncClient) -> None:
    cases = {
        GRAPHQL_RESPONSE: GRAPHQL_RESPONSE,
        "application/json": "application/json",
        "*/*": "application/json",
        "": "application/json",
        "application/graphql-response+json,application/json;q=0.9": GRAPHQL_RESPONSE,
        "application/json, application/graphql-response+json;q=0.5": "application/json",
        "text/html,application/xhtml+xml,*/*;q=0.8": "application/json",
    }
    for accept, media in cases.items():
        response = await http.post("/graphql", json={"query": QUERY}, headers={"Accept": accept})
        assert answer(response, 200, media)["data"]["projections"], accept


async def test_an_accept_of_nothing_json_is_406_in_json(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json={"query": QUERY}, headers={"Accept": "text/plain"})
    body = answer(response, 406, "application/json")
    assert body["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE", body


async def test_request_errors_are_400_without_data_when_the_spec_type_is_accepted(
    http: httpx.AsyncClient,
) -> None:
    documents: list[dict[str, Any]] = [
        {"query": "{"},  # does not parse
        {"query": "{ nope }"},  # does not validate
        {"query": "query($n: Int!) { __typename }", "variables": {"n": "x"}},  # coercion
        {"query": "query A { __typename }", "operationName": "B"},  # no such operation
    ]
    for document in documents:
        response = await http.post("/graphql", json=document, headers=SPEC)
        request_error(response, 400, "VALIDATION_FAILED")
        legacy = answer(
            await http.post("/graphql", json=document, headers=LEGACY), 200, "application/json"
        )
        assert legacy["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED", legacy


async def test_a_field_error_keeps_its_data_entry_and_200(http: httpx.AsyncClient) -> None:
    """Execution began: `data` is there (null, when the field is non-null) beside the error at
    the field's path."""
    response = await http.post(
        "/graphql", json={"query": "{ users(first: 1000) { totalCount } }"}, headers=SPEC
    )
    body = answer(response, 200)
    assert "data" in body and body["errors"][0]["path"] == ["users"], body
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED", body


async def test_malformed_requests_are_4xx_graphql_errors_in_the_accepted_type(
    http: httpx.AsyncClient,
) -> None:
    cases: list[tuple[bytes, str, int, str]] = [
        (b'{"query": ', "application/json", 400, "BAD_REQUEST"),  # malformed JSON
        (b'{"qeury": "{ __typename }"}', "application/json", 400, "BAD_REQUEST"),  # no query
        (b"", "application/json", 400, "BAD_REQUEST"),
        (b'{"query": "{ __typename }"}', "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ]
    for body, content_type, status, code in cases:
        headers = {**SPEC, "Content-Type": content_type}
        request_error(await http.post("/graphql", content=body, headers=headers), status, code)
        legacy = await http.post("/graphql", content=body, headers={"Content-Type": content_type})
        assert answer(legacy, status, "application/json")["errors"][0]["extensions"]["code"] == code
    big = json.dumps({"query": " " * Settings().max_body_bytes + QUERY})
    headers = {**SPEC, "Content-Type": "application/json"}
    request_error(
        await http.post("/graphql", content=big, headers=headers), 413, "PAYLOAD_TOO_LARGE"
    )


# ---------------------------------------------------------------- methods


async def test_get_runs_queries_only(http: httpx.AsyncClient) -> None:
    assert answer(await http.get("/graphql", params={"query": QUERY}, headers=SPEC), 200)["data"]
    for document in ("mutation { __typename }", "subscription { events { position } }"):
        for headers in (SPEC, LEGACY):
            response = await http.get("/graphql", params={"query": document}, headers=headers)
            assert response.status_code == 405, response.text
            assert response.headers["allow"] == "POST"
            assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_other_methods_are_405_with_the_allowed_ones(http: httpx.AsyncClient) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        response = await http.request(method, "/graphql", json={"query": QUERY})
        assert response.status_code == 405, response.text
        assert response.headers["allow"] == "GET, POST"
        assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_a_subscription_posted_for_one_json_answer_is_406(http: httpx.AsyncClient) -> None:
    """It streams: over HTTP it needs the multipart Accept (tests/e2e/test_http_subscriptions)."""
    document = {"query": "subscription { events { position } }"}
    for headers in (SPEC, LEGACY):
        response = await http.post("/graphql", json=document, headers=headers)
        assert response.status_code == 406, response.text
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "NOT_ACCEPTABLE" and "multipart" in error["message"]


# ---------------------------------------------------------------- refusals by code

MUTATION = 'mutation { updateUser(input: {userId: "nobody", name: "N"}) { version } }'
TRUSTED = "query Products { products(first: 1) { totalCount } }"
SCHEMA = "query Schema { __schema { queryType { name } } }"


@pytest.fixture(scope="module")
def secured(
    server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server requiring tokens, with one trusted document, a rate of 2 mutations a minute and
    introspection for admins."""
    name = template_database.replace("_template", "_graphql_http")
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    folder = tmp_path_factory.mktemp("graphql_http")
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({document_hash(d): d for d in (TRUSTED, SCHEMA)}))
    env = {
        "DATABASE_URL": _with_database(server_url, name),
        "CHRONICLE_JWT_SECRET": SECRET,
        "CHRONICLE_JWT_ISSUER": "https://id.example.com",
        "CHRONICLE_JWT_AUDIENCE": "chronicle",
        "CHRONICLE_TRUSTED_DOCUMENTS": str(manifest),
        "CHRONICLE_RATE_LIMIT": "2/minute",
        "CHRONICLE_RUN_PROJECTIONS": "false",
    }
    server = start_server(env, folder / "serve.log")
    try:
        yield server
    finally:
        server.stop()
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert "Traceback" not in server.output(), server.output()


async def test_refusals_before_execution_have_the_status_of_their_code(secured: Server) -> None:
    user = {"Authorization": f"Bearer {token('http-user')}"}
    admin = {"Authorization": f"Bearer {token('http-admin', 'admin')}"}
    unknown = {"documentId": "sha256:" + "0" * 64}
    async with httpx.AsyncClient(base_url=secured.url, timeout=30) as http:

        async def spec(payload: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
            return await http.post("/graphql", json=payload, headers={**SPEC, **headers})

        ok = answer(await spec({"documentId": document_hash(TRUSTED)}, user), 200)
        assert ok["data"]["products"] is not None, ok
        request_error(
            await spec({"query": "{ __typename }"}, user), 403, "TRUSTED_DOCUMENT_REQUIRED"
        )
        request_error(await spec(unknown, user), 404, "PERSISTED_QUERY_NOT_FOUND")
        request_error(await spec({"documentId": document_hash(SCHEMA)}, user), 403, "FORBIDDEN")
        bad = {"Authorization": "Bearer nonsense"}
        request_error(await spec({"query": "{ __typename }"}, bad), 401, "UNAUTHENTICATED")
        for _ in range(2):  # within the rate: refused by the domain, at the field's path
            refused = answer(await spec({"query": MUTATION}, admin), 200)
            assert refused["errors"][0]["extensions"]["code"] == "NOT_FOUND", refused
        limited = await spec({"query": MUTATION}, admin)
        body = request_error(limited, 429, "RATE_LIMITED")
        assert 0 < int(limited.headers["retry-after"]) <= 60, limited.headers
        assert body["errors"][0]["extensions"]["retryAfter"] > 0
        # The same refusals for a legacy client: a GraphQL answer, 200 (a bad token excepted).
        legacy = await http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={**LEGACY, **user}
        )
        assert answer(legacy, 200, "application/json")["errors"][0]["extensions"]["code"] == (
            "TRUSTED_DOCUMENT_REQUIRED"
        )
