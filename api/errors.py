"""Refusals as GraphQL errors with `extensions.code`; everything else masked as INTERNAL."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from domain.errors import DomainError
from store.errors import WrongExpectedVersion

log = logging.getLogger("chronicle.errors")

CODES = frozenset(
    {
        "VALIDATION_FAILED",
        "NOT_FOUND",
        "RULE_VIOLATED",
        "DUPLICATE",
        "CONCURRENCY_CONFLICT",
        "STALE_READ_TIMEOUT",
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "FELL_BEHIND",
    }
)


class ClientError(GraphQLError):
    """An error the client caused and may read: it carries its code."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        assert code in CODES, code
        super().__init__(message, extensions={"code": code, **details})


def validation_failed(message: str, **details: Any) -> ClientError:
    return ClientError("VALIDATION_FAILED", message, **details)


def from_refusal(error: Exception) -> ClientError | None:
    """The client error for a refusal of the domain or the store, None for anything else."""
    if isinstance(error, DomainError):
        return ClientError(error.code, error.message)
    if isinstance(error, WrongExpectedVersion):
        return ClientError(
            "CONCURRENCY_CONFLICT",
            str(error),
            streamId=error.stream_id,
            actualVersion=error.actual,
        )
    return None


DOCUMENT_ERRORS = (InvalidOperationTypeError, CannotGetOperationTypeError)
"""Strawberry's refusals of the document's operation: the client's mistake, not a fault."""


def is_client_error(error: GraphQLError) -> bool:
    """Known refusals and errors in the request document itself reach the client as they are."""
    original = error.original_error
    if original is None:
        return True  # a syntax or validation error of the GraphQL document
    if isinstance(original, DOCUMENT_ERRORS):
        return True  # a query sent where only subscriptions go (legacy graphql-ws `start`)
    return isinstance(original, ClientError) or (
        isinstance(original, GraphQLError) and original.original_error is None
    )


def code_document_error(error: GraphQLError) -> None:
    """Give a GraphQL syntax or validation error the code VALIDATION_FAILED."""
    if error.extensions is None or "code" not in error.extensions:
        error.extensions = {**(error.extensions or {}), "code": "VALIDATION_FAILED"}


MAX_TRACE_LINE = 500
MAX_TRACE_LINES = 300


def bounded_trace(error: GraphQLError) -> str:
    """The trace of what went wrong, each line and the whole cut short: an exception's text
    may repeat a client's input (a database error quotes its statement and parameters), and a
    request's full text never goes to the log."""
    cause = error.original_error or error
    lines = "".join(traceback.format_exception(cause)).splitlines()
    kept = [
        line if len(line) <= MAX_TRACE_LINE else f"{line[:MAX_TRACE_LINE]}… ({len(line)} chars)"
        for line in lines[:MAX_TRACE_LINES]
    ]
    if len(lines) > MAX_TRACE_LINES:
        kept.append(f"… {len(lines) - MAX_TRACE_LINES} more lines")
    return "\n".join(kept)


def triage(errors: list[GraphQLError]) -> None:
    """Log what will be masked, with its trace; code the errors of the document itself."""
    for error in errors:
        if not is_client_error(error):
            log.error("unexpected error in %s\n%s", error.path, bounded_trace(error))
        elif error.original_error is None or isinstance(error.original_error, DOCUMENT_ERRORS):
            code_document_error(error)


class ErrorCodes(MaskErrors):
    """Every error leaves with a code: document errors become VALIDATION_FAILED, refusals keep
    theirs, and anything unexpected is replaced by an INTERNAL error with no details."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda error: not is_client_error(error))

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return GraphQLError(
            "Internal error.",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL"},
        )

    def _process_result(self, result: object) -> None:
        # Strawberry's check is an isinstance of a runtime Protocol, paid on every result a
        # subscription streams (a tenth of a push's CPU); the attribute says the same.
        if errors := getattr(result, "errors", None):
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        processed = super()._process_errors(errors)
        for error in processed:
            code_document_error(error)
        return processed
