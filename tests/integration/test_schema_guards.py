"""The schema's guards, exercised in-process: limits, error codes and masking."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

import pytest
import strawberry

from api.errors import ClientError, ErrorCodes
from api.schema import ChronicleSchema, build_schema
from api.settings import Settings


async def test_queries_deeper_than_the_limit_are_refused_before_running() -> None:
    schema = build_schema(Settings(max_query_depth=0))
    result = await schema.execute("{ events { position } }")
    assert result.errors
    assert result.errors[0].extensions == {"code": "VALIDATION_FAILED"}
    assert "exceeds maximum operation depth" in result.errors[0].message


async def test_too_many_aliases_are_refused() -> None:
    schema = build_schema(Settings(max_aliases=2))
    result = await schema.execute(
        "{ a: events { position } b: events { position } c: events { position } }"
    )
    assert result.errors and result.errors[0].extensions == {"code": "VALIDATION_FAILED"}


@strawberry.type
class Broken:
    @strawberry.field
    def secret(self) -> str:
        raise RuntimeError("password=hunter2 leaked in a bug")

    @strawberry.field
    def refused(self) -> str:
        raise ClientError("RULE_VIOLATED", "not now")


async def test_unexpected_errors_are_masked_for_the_client_and_logged_with_their_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    schema = ChronicleSchema(query=Broken, extensions=[ErrorCodes])
    with caplog.at_level(logging.ERROR, logger="chronicle.errors"):
        result = await schema.execute("{ secret }")
    assert result.errors is not None
    (error,) = result.errors
    assert error.message == "Internal error."
    assert error.extensions == {"code": "INTERNAL"}
    assert "hunter2" not in str(error.formatted)
    (record,) = caplog.records
    # The trace is in the message, each line cut short (api/errors.py: bounded_trace).
    logged = record.getMessage()
    assert "Traceback (most recent call last)" in logged
    assert "RuntimeError: password=hunter2 leaked in a bug" in logged
    assert 'raise RuntimeError("password=hunter2 leaked in a bug")' in logged


async def test_refusals_keep_their_code_and_are_not_logged_as_faults(
    caplog: pytest.LogCaptureFixture,
) -> None:
    schema = ChronicleSchema(query=Broken, extensions=[ErrorCodes])
    with caplog.at_level(logging.ERROR):
        result = await schema.execute("{ refused }")
    assert result.errors is not None
    assert (result.errors[0].message, result.errors[0].extensions) == (
        "not now",
        {"code": "RULE_VIOLATED"},
    )
    assert caplog.records == []


@strawberry.type
class Ticks:
    @strawberry.subscription  # type: ignore[untyped-decorator]
    async def ticks(self) -> AsyncGenerator[int, None]:
        yield 1
        raise RuntimeError("password=hunter2 leaked mid-stream")


async def test_errors_in_a_streamed_subscription_are_masked_too() -> None:
    schema = ChronicleSchema(query=Broken, subscription=Ticks, extensions=[ErrorCodes])
    # Each result as it is handed out, before the next: what a websocket sends at once.
    frames = [
        (r.data, r.errors and [(e.message, e.extensions) for e in r.errors])
        async for r in await schema.subscribe("subscription { ticks }")
    ]
    assert frames == [
        ({"ticks": 1}, None),
        (None, [("Internal error.", {"code": "INTERNAL"})]),
    ]
