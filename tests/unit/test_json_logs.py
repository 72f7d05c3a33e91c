"""LOG_FORMAT=json: one JSON object a line, naming the request, its correlation and its trace."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from api.logs import JsonFormatter, bind_request, unbind_request
from api.observe import ObservedRequests, route_of


def record(
    message: str = "hello %s", *args: object, name: str = "chronicle", exc_info: Any = None
) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, args, exc_info)


def line(entry: logging.LogRecord) -> dict[str, Any]:
    text = JsonFormatter().format(entry)
    assert "\n" not in text
    parsed = json.loads(text)
    assert isinstance(parsed, dict)
    return parsed


def test_a_record_is_one_json_object_with_time_level_logger_and_message() -> None:
    entry = line(record("hello %s", "world"))
    assert entry["message"] == "hello world"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "chronicle"
    assert entry["timestamp"].endswith("Z") and "T" in entry["timestamp"]
    assert "requestId" not in entry and "correlationId" not in entry


def test_the_request_and_correlation_ids_bound_are_in_every_line() -> None:
    tokens = bind_request("req-1", "corr-9")
    try:
        entry = line(record())
    finally:
        unbind_request(tokens)
    assert entry["requestId"] == "req-1"
    assert entry["correlationId"] == "corr-9"
    assert "requestId" not in line(record())


def test_an_exception_keeps_its_trace_on_the_one_line() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        failed = record("it failed", exc_info=sys.exc_info())
    entry = line(failed)
    assert entry["message"] == "it failed"
    assert entry["exception"].startswith("Traceback")
    assert "ValueError: bad\nthing" in entry["exception"]


def test_uvicorn_access_lines_carry_their_fields() -> None:
    access = record(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "POST",
        "/graphql",
        "1.1",
        200,
        name="uvicorn.access",
    )
    entry = line(access)
    assert entry["method"] == "POST" and entry["path"] == "/graphql" and entry["status"] == 200


def test_the_trace_id_of_the_current_span() -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    tracer = sdk.TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        entry = line(record())
    context = span.get_span_context()
    assert entry["traceId"] == format(context.trace_id, "032x")
    assert entry["spanId"] == format(context.span_id, "016x")
    assert "traceId" not in line(record())  # no span, no trace id


async def test_each_request_is_named_for_the_logs_and_answered_with_its_id() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(line(record("inside")))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    transport = httpx.ASGITransport(app=ObservedRequests(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        given = await client.get("/graphql", headers={"X-Request-Id": "abc-123"})
        correlated = await client.get("/", headers={"X-Correlation-Id": "order-7"})
        hostile = await client.get("/", headers={"X-Request-Id": "no spaces\tor tabs"})
    assert given.headers["x-request-id"] == "abc-123"
    assert seen[0]["requestId"] == "abc-123" and "correlationId" not in seen[0]
    assert seen[1]["correlationId"] == "order-7"
    assert seen[1]["requestId"] == correlated.headers["x-request-id"]
    assert len(correlated.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "no spaces\tor tabs"
    assert seen[2]["requestId"] == hostile.headers["x-request-id"]
    assert "requestId" not in line(record())  # unbound after the request


def test_routes_are_a_bounded_set() -> None:
    assert route_of("/graphql") == "/graphql"
    assert route_of("/graphiql/assets/index-abc.js") == "/graphiql"
    assert route_of("/health/ready") == "/health/ready"
    assert route_of("/graphqlx") == "other"
    assert route_of("/users/123") == "other"
    assert route_of("/") == "/"
