"""CORS end to end: the shared server allows one foreign origin (CHRONICLE_ALLOWED_ORIGINS) for HTTP
as for websockets; a server configured with `*` allows every origin, without credentials.

A browser sends a preflight before a cross-origin POST of JSON (or with Authorization): it is
answered by the CORS middleware, never by the GraphQL endpoint, with the security headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.e2e.conftest import ALLOWED_ORIGIN, Server, start_server
from tests.e2e.live import TRANSPORT_WS, ws_url
from tests.e2e.test_surface import SECURITY_HEADERS

STRANGER = "https://evil.example.net"
REQUESTED_HEADERS = "authorization, content-type, x-correlation-id, accept"


def preflight(server: Server, origin: str, method: str = "POST") -> httpx.Response:
    return httpx.options(
        server.graphql_url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": REQUESTED_HEADERS,
        },
        timeout=30,
    )


def call(server: Server, origin: str) -> httpx.Response:
    return httpx.post(
        server.graphql_url,
        json={"query": "{ __typename }"},
        headers={"Origin": origin, "X-Correlation-Id": "cors-test"},
        timeout=30,
    )


def security_headers_of(response: httpx.Response) -> dict[str, str | None]:
    return {name: response.headers.get(name) for name in SECURITY_HEADERS}


def test_a_preflight_from_an_allowed_origin_is_answered(server: Server) -> None:
    for method in ("POST", "GET"):
        response = preflight(server, ALLOWED_ORIGIN, method)
        assert response.status_code == 200, response.text
        headers = response.headers
        assert headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert {"GET", "POST"} <= {
            m.strip() for m in headers["access-control-allow-methods"].split(",")
        }
        allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type", "x-correlation-id", "accept"} <= allowed
        assert headers["access-control-allow-credentials"] == "true"
        assert "origin" in headers["vary"].lower()
        assert security_headers_of(response) == SECURITY_HEADERS
    assert "GraphQL only supports" not in server.output()


def test_a_preflight_from_another_origin_gets_no_allow_header(server: Server) -> None:
    response = preflight(server, STRANGER)
    assert response.status_code == 400, response.text
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_REQUEST" and "origin" in error["message"]
    assert security_headers_of(response) == SECURITY_HEADERS


def test_a_preflight_for_a_method_or_header_not_allowed_is_refused(server: Server) -> None:
    response = preflight(server, ALLOWED_ORIGIN, "DELETE")
    assert response.status_code == 400 and "method" in response.json()["errors"][0]["message"]
    odd = httpx.options(
        server.graphql_url,
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-something-else",
        },
        timeout=30,
    )
    assert odd.status_code == 400 and "headers" in odd.json()["errors"][0]["message"]


def test_responses_carry_the_allow_header_for_allowed_origins_only(server: Server) -> None:
    allowed = call(server, ALLOWED_ORIGIN)
    assert allowed.status_code == 200 and allowed.json()["data"] == {"__typename": "Query"}
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "retry-after" in allowed.headers["access-control-expose-headers"].lower()
    assert security_headers_of(allowed) == SECURITY_HEADERS
    stranger = call(server, STRANGER)
    assert stranger.status_code == 200  # the browser, not the server, withholds the answer
    assert "access-control-allow-origin" not in stranger.headers
    assert "access-control-allow-credentials" not in stranger.headers
    # A refusal reaches an allowed page too, so it can read why.
    refused = httpx.post(
        server.graphql_url,
        content=b"{",
        headers={"Origin": ALLOWED_ORIGIN, "Content-Type": "application/json"},
        timeout=30,
    )
    assert refused.status_code == 400
    assert refused.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


async def test_websockets_still_follow_the_same_list(server: Server) -> None:
    async with websockets.connect(
        ws_url(server),
        subprotocols=[TRANSPORT_WS],
        origin=ALLOWED_ORIGIN,  # type: ignore[list-item,arg-type]
    ):
        pass
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(
            ws_url(server),
            subprotocols=[TRANSPORT_WS],
            origin=STRANGER,  # type: ignore[list-item,arg-type]
        ):
            pass
    assert refused.value.response.status_code == 403


@pytest.fixture(scope="module")
def everyone(e2e_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log: Path = tmp_path_factory.mktemp("cors") / "serve.log"
    env = {
        "DATABASE_URL": e2e_database_url,
        "CHRONICLE_ALLOWED_ORIGINS": "*",
        "CHRONICLE_RUN_PROJECTIONS": "false",
    }
    server = start_server(env, log)
    yield server
    server.stop()


def test_star_allows_every_origin_without_credentials(everyone: Server) -> None:
    response = preflight(everyone, STRANGER)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    answered = call(everyone, STRANGER)
    assert answered.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answered.headers
