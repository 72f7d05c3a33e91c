"""What goes into the store and what comes out of it."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4


class StreamState(enum.Enum):
    """Expected versions that are not a number."""

    ANY = "any"
    NO_STREAM = "no stream"
    STREAM_EXISTS = "stream exists"


ExpectedVersion = StreamState | int
"""`StreamState` or the exact version the stream must be at (0 means no stream)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NewEvent:
    event_type: str
    data: Mapping[str, Any]
    schema_version: int = 1
    event_id: UUID = field(default_factory=uuid4)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamAppend:
    """Events for one stream, written only if the stream is at `expected`."""

    stream_id: str
    stream_type: str
    expected: ExpectedVersion
    events: Sequence[NewEvent]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedEvent:
    position: int
    event_id: UUID
    stream_id: str
    stream_type: str
    version: int
    event_type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    transaction_id: int
    recorded_at: datetime

    @property
    def checkpoint(self) -> FeedCheckpoint:
        return FeedCheckpoint(self.transaction_id, self.position)


@dataclass(frozen=True, slots=True, order=True)
class FeedCheckpoint:
    """A place in the gap-safe feed: the writing transaction's id, then the position."""

    transaction_id: int
    position: int


FEED_START = FeedCheckpoint(0, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendResult:
    """The events one append wrote, and each stream's version after it."""

    events: Sequence[RecordedEvent]
    versions: Mapping[str, int]

    @property
    def position(self) -> int:
        return max(event.position for event in self.events)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessedCommand:
    """What a command wrote the first time it ran, for a retry with the same commandId."""

    command_id: str
    stream_id: str
    version: int
    events: Sequence[RecordedEvent]


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    stream_id: str
    stream_type: str
    version: int
    state: dict[str, Any]
    state_schema: int
