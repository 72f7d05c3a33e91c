"""One table maps every error of the domain, the store and the read side to what clients see:
each refusal to a documented code, each fault to nothing (masked as INTERNAL)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator

import pytest

import domain
import projections
import store
from api.errors import CODES, client_error_for, code_for, refused
from domain.errors import DomainError, Duplicate, NotFound, RuleViolated, ValidationFailed
from projections.errors import FellBehind, InvalidPage, InvalidSearch, StaleRead, UnknownPosition
from store.errors import (
    CommandAlreadyProcessed,
    CommandIdReused,
    DuplicateEventId,
    StoreError,
    UnknownEventSchema,
    WrongExpectedVersion,
)
from store.events import StreamState

DOCUMENTED = {
    # DESIGN.md, "Errors"
    "VALIDATION_FAILED",
    "NOT_FOUND",
    "RULE_VIOLATED",
    "DUPLICATE",
    "CONCURRENCY_CONFLICT",
    "STALE_READ_TIMEOUT",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    # the end of a subscription that fell behind the live feed (api/subscriptions.py)
    "FELL_BEHIND",
    # a mutation or a subscription start over the caller's rate (api/rate_limits.py)
    "RATE_LIMITED",
    # trusted documents (api/trusted.py): an id of no manifest document; a document of no
    # manifest entry from a caller who is not an admin
    "PERSISTED_QUERY_NOT_FOUND",
    "TRUSTED_DOCUMENT_REQUIRED",
}

FAULTS = {StoreError, CommandAlreadyProcessed, UnknownEventSchema, DuplicateEventId}
"""Errors of ours no client can cause, never told to one (StoreError itself is one, unless a
subclass gives a code)."""

STARTUP_ERRORS = {"store.serialization", "store.migrations", "store.grants"}
"""Errors raised before any request or outside the service: the registry's (while the
aggregates are registered), a migration refused at start, and the `chronicle grants`
command's."""


def error_classes() -> Iterator[type[Exception]]:
    """Every exception class defined in domain/, store/ and projections/."""
    for package in (domain, store, projections):
        for module_info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(module_info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, Exception) and cls.__module__ == module.__name__:
                    yield cls


def test_the_codes_are_the_documented_ones() -> None:
    assert CODES == DOCUMENTED


def test_every_error_of_the_domain_the_store_and_the_read_side_has_a_documented_code() -> None:
    classes = list(error_classes())
    assert {StaleRead, UnknownPosition, FellBehind, WrongExpectedVersion, Duplicate} <= set(classes)
    for cls in classes:
        if cls.__module__ in STARTUP_ERRORS:
            assert code_for(cls) is None, cls
            continue
        assert issubclass(cls, DomainError | StoreError), (
            f"{cls.__qualname__} of {cls.__module__} is neither a DomainError nor a StoreError: "
            "give it a code for clients, or code None for a fault"
        )
        if cls in FAULTS:
            assert code_for(cls) is None, cls
        else:
            assert code_for(cls) in DOCUMENTED, cls


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ValidationFailed("age must be 13 or more"), "VALIDATION_FAILED"),
        (NotFound("no such order"), "NOT_FOUND"),
        (RuleViolated("the order is not paid"), "RULE_VIOLATED"),
        (Duplicate("email taken"), "DUPLICATE"),
        (CommandIdReused("c-1"), "DUPLICATE"),
        (StaleRead("projection users has not reached position 9"), "STALE_READ_TIMEOUT"),
        (UnknownPosition(9), "VALIDATION_FAILED"),
        (InvalidPage("invalid cursor"), "VALIDATION_FAILED"),
        (InvalidSearch("at most 10 words"), "VALIDATION_FAILED"),
    ],
)
def test_a_refusal_reaches_the_client_with_its_code_and_message(
    error: Exception, code: str
) -> None:
    client_error = client_error_for(error)
    assert client_error is not None
    assert client_error.extensions == {"code": code}
    assert client_error.message == str(error)


def test_a_conflict_names_the_stream_and_its_version() -> None:
    client_error = client_error_for(WrongExpectedVersion("s-1", 3, 5))
    assert client_error is not None
    assert client_error.message == "stream s-1 expected at version 3 but found version 5"
    assert client_error.extensions == {
        "code": "CONCURRENCY_CONFLICT",
        "streamId": "s-1",
        "actualVersion": 5,
    }
    missing = client_error_for(WrongExpectedVersion("s-2", StreamState.STREAM_EXISTS, None))
    assert missing is not None
    assert missing.extensions == {
        "code": "CONCURRENCY_CONFLICT",
        "streamId": "s-2",
        "actualVersion": None,
    }


def test_a_subscriber_that_fell_behind_is_told_where_to_resume() -> None:
    client_error = client_error_for(FellBehind(41))
    assert client_error is not None
    assert client_error.extensions == {"code": "FELL_BEHIND", "resumeAfter": "41"}
    assert 'after: "41"' in client_error.message


def test_a_refusal_may_be_worded_for_where_it_happened() -> None:
    client_error = refused(StaleRead("projection orders has not reached 7"), "retry later")
    assert client_error.message == "retry later"
    assert client_error.extensions == {"code": "STALE_READ_TIMEOUT"}


@pytest.mark.parametrize(
    "error",
    [
        CommandAlreadyProcessed("c-1"),
        UnknownEventSchema("UserRegistered v9"),
        DuplicateEventId("e-1"),
        StoreError("a fault"),
        RuntimeError("boom"),
        ValueError("bad"),
    ],
)
def test_a_fault_has_no_client_error(error: Exception) -> None:
    assert client_error_for(error) is None
