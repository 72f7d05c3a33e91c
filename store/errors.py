"""Refusals of the event store."""

from __future__ import annotations

from typing import ClassVar

from domain.errors import Duplicate
from store.events import ExpectedVersion, ProcessedCommand, StreamState


def _describe(expected: ExpectedVersion) -> str:
    return expected.value if isinstance(expected, StreamState) else f"version {expected}"


class StoreError(Exception):
    """An error of the store or of the read side built on it (projections/errors.py).

    `code` is the GraphQL error code a client is answered with (the table in api/errors.py);
    None for a fault no client can cause, which reaches clients masked as INTERNAL.
    """

    code: ClassVar[str | None] = None


class WrongExpectedVersion(StoreError):
    """The stream was not at the version the append expected; nothing was written."""

    code = "CONCURRENCY_CONFLICT"

    def __init__(self, stream_id: str, expected: ExpectedVersion, actual: int | None) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        found = "no stream" if actual is None else f"version {actual}"
        super().__init__(f"stream {stream_id} expected at {_describe(expected)} but found {found}")


class CommandAlreadyProcessed(StoreError):
    """An append carried a commandId that an earlier append already recorded."""

    def __init__(self, command_id: str, prior: ProcessedCommand | None = None) -> None:
        self.command_id = command_id
        self.prior = prior
        """The first run's result, when the store read it."""
        super().__init__(f"command {command_id} was already processed")


class CommandIdReused(Duplicate):
    """A commandId already recorded for a different command (another type, target or input).

    Its message names the first command (its type and stream) only to the caller who sent it
    (`first`): nothing of another caller's command reaches whoever reused its id.
    """

    def __init__(
        self, command_id: str, *, first: str | None = None, stream_id: str | None = None
    ) -> None:
        self.command_id = command_id
        used_for = "a different command"
        if first is not None:
            used_for = f"your {first} command" + (f" on {stream_id}" if stream_id else "")
        super().__init__(
            f"commandId {command_id!r} was already used for {used_for}; "
            "send a new commandId for a new command"
        )


class UnknownEventSchema(StoreError):
    """A stored event's schema version has no upcaster to the current version."""


class DuplicateEventId(StoreError):
    """An append carried an event id the store already holds; nothing was written."""
