"""What goes into the store and what comes out of it."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from hashlib import sha256
from typing import Any
from uuid import UUID, uuid4

import msgspec


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


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event as the store holds it. A frozen msgspec struct, not a dataclass: the feed
    makes one per event read, and a frozen dataclass's `__init__` costs five times as much
    (benchmarks/projections.py)."""

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


class FeedCheckpoint(msgspec.Struct, frozen=True, order=True):
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
class CommandIdentity:
    """What a commandId stands for: a retry must match all three to get the first result.

    `fingerprint` is a digest of the client's input (see `fingerprint`), never of values the
    server fills in, so that two sends of the same request match.
    """

    command_type: str
    target: str
    """The command's own stream."""
    fingerprint: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessedCommand:
    """What a command wrote the first time it ran, for a retry with the same commandId."""

    command_id: str
    stream_id: str
    version: int
    events: Sequence[RecordedEvent]
    command_type: str | None = None
    """None for a command recorded before types and fingerprints were (migration 0006)."""
    fingerprint: str | None = None

    def is_run_of(self, identity: CommandIdentity) -> bool:
        """Whether `identity` is this command sent again, as far as its record tells.

        A record from before migration 0006 knows only its target: it must still match.
        """
        return (
            self.stream_id == identity.target
            and self.command_type in (None, identity.command_type)
            and self.fingerprint in (None, identity.fingerprint)
        )


def fingerprint(value: Any, *, omit: Sequence[str] = ()) -> str:
    """The sha256 of a canonical JSON encoding of `value` (sorted keys), without the
    top-level fields named in `omit`. Dataclasses, enums and the like encode as msgspec does;
    a falsy sentinel it cannot encode (strawberry's UNSET) as null, like a field sent as null."""
    builtins = msgspec.to_builtins(value, enc_hook=_unset_as_null)
    if isinstance(builtins, dict):
        builtins = {key: item for key, item in builtins.items() if key not in omit}
    return sha256(msgspec.json.encode(_without_nulls(builtins), order="sorted")).hexdigest()


def _without_nulls(value: Any) -> Any:
    # A field sent as null, left out, or added to the input later (and so absent from an
    # older send) all mean the same.
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def _unset_as_null(value: Any) -> None:
    if value:
        raise TypeError(f"cannot fingerprint a {type(value).__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    stream_id: str
    stream_type: str
    version: int
    state: dict[str, Any]
    state_schema: int
