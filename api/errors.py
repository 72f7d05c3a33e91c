"""Refusals as GraphQL errors with `extensions.code`; everything else masked as INTERNAL."""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import StreamExecutionResult

from domain.errors import DomainError
from projections.errors import FellBehind
from store.errors import StoreError, WrongExpectedVersion

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
        "PERSISTED_QUERY_NOT_FOUND",
        "TRUSTED_DOCUMENT_REQUIRED",
        "RATE_LIMITED",
    }
)


class ClientError(GraphQLError):
    """An error the client caused and may read: it carries its code."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        assert code in CODES, code
        super().__init__(message, extensions={"code": code, **details})


def validation_failed(message: str, **details: Any) -> ClientError:
    return ClientError("VALIDATION_FAILED", message, **details)


Details = Callable[[Any], dict[str, Any]]


def _no_details(_: Exception) -> dict[str, Any]:
    return {}


CLIENT_ERRORS: dict[type[Exception], Details] = {
    DomainError: _no_details,
    StoreError: _no_details,
    WrongExpectedVersion: lambda error: {
        "streamId": error.stream_id,
        "actualVersion": error.actual,
    },
    FellBehind: lambda error: {"resumeAfter": str(error.last_position)},
}
"""The one table of what reaches a client: an error of a class here (or of a subclass)
answers with its class's `code` (see domain/errors.py, store/errors.py and
projections/errors.py), its message and these details; one whose `code` is None, or of a class
not here, is a fault, masked as INTERNAL."""


def _entry(kind: type[BaseException]) -> Details | None:
    return next((CLIENT_ERRORS[cls] for cls in kind.__mro__ if cls in CLIENT_ERRORS), None)


def code_for(kind: type[BaseException]) -> str | None:
    """The code clients see for errors of class `kind`, None for a fault."""
    if _entry(kind) is None:
        return None
    code: str | None = getattr(kind, "code", None)
    return code


def client_error_for(error: BaseException, message: str | None = None) -> ClientError | None:
    """The error a client is answered with for `error`, None for a fault. `message` words it for
    where it happened, when the error's own text was written for the log."""
    details = _entry(type(error))
    code = code_for(type(error))
    if details is None or code is None:
        return None
    return ClientError(code, str(error) if message is None else message, **details(error))


def refused(error: DomainError | StoreError, message: str | None = None) -> ClientError:
    """The client error for a refusal that has a code (see `client_error_for`)."""
    client_error = client_error_for(error, message)
    if client_error is None:
        raise TypeError(f"{type(error).__name__} has no code for clients")
    return client_error


@contextlib.contextmanager
def client_errors(reworded: Mapping[type[Exception], str] | None = None) -> Iterator[None]:
    """Raise the client error of each refusal raised in the block; faults pass unchanged.
    `reworded` gives the message of a class of refusals for this context."""
    try:
        yield
    except Exception as error:
        message = next(
            (text for cls, text in (reworded or {}).items() if isinstance(error, cls)), None
        )
        client_error = client_error_for(error, message)
        if client_error is None:
            raise
        raise client_error from error


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


def mask(errors: list[GraphQLError]) -> list[GraphQLError]:
    """Each error as the client sees it: refusals and document errors with their code, anything
    else an INTERNAL error with no details."""
    kept = []
    for error in errors:
        if is_client_error(error):
            code_document_error(error)
            kept.append(error)
        else:
            kept.append(
                GraphQLError(
                    "Internal error.",
                    nodes=error.nodes,
                    path=error.path,
                    extensions={"code": "INTERNAL"},
                )
            )
    return kept


def _mask_result(result: object) -> None:
    # Any result with errors: a plain attribute check, where a runtime Protocol's isinstance
    # would cost a tenth of a subscription push's CPU.
    if errors := getattr(result, "errors", None):
        result.errors = mask(errors)  # type: ignore[attr-defined]


class ErrorCodes(SchemaExtension):
    """Every error leaves with a code: document errors become VALIDATION_FAILED, refusals keep
    theirs, and anything unexpected is replaced by an INTERNAL error with no details.

    Strawberry's `MaskErrors` does the same with private methods to override; this extension
    uses only the public hooks: each streamed result (`on_stream_result`, subscriptions and the
    websocket transports) and the operation's result (`on_operation`, plain HTTP).
    """

    def __init__(self) -> None:
        self._streamed = False

    def on_operation(self) -> Iterator[None]:
        self._streamed = False
        yield
        if self._streamed:
            return  # each result was masked as it was streamed
        result = self.execution_context.result
        _mask_result(getattr(result, "initial_result", result))

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        self._streamed = True
        _mask_result(result)
        for part in (
            *(getattr(result, "incremental", None) or ()),
            *(getattr(result, "completed", None) or ()),
        ):
            _mask_result(part)
        yield
