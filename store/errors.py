"""Refusals of the event store."""

from __future__ import annotations

from store.events import ExpectedVersion, StreamState


def _describe(expected: ExpectedVersion) -> str:
    return expected.value if isinstance(expected, StreamState) else f"version {expected}"


class WrongExpectedVersion(Exception):
    """The stream was not at the version the append expected; nothing was written."""

    def __init__(self, stream_id: str, expected: ExpectedVersion, actual: int | None) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        found = "no stream" if actual is None else f"version {actual}"
        super().__init__(f"stream {stream_id} expected at {_describe(expected)} but found {found}")


class CommandAlreadyProcessed(Exception):
    """An append carried a commandId that an earlier append already recorded."""

    def __init__(self, command_id: str) -> None:
        self.command_id = command_id
        super().__init__(f"command {command_id} was already processed")


class UnknownEventSchema(Exception):
    """A stored event's schema version has no upcaster to the current version."""


class DuplicateEventId(Exception):
    """An append carried an event id the store already holds; nothing was written."""
