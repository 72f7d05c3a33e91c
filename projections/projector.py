"""What the runner runs: projectors (tables kept from the feed) and process managers (commands
sent in answer to it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, cast
from uuid import UUID

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from store.events import FeedCheckpoint, RecordedEvent
from store.serialization import decode_as

E_co = TypeVar("E_co", covariant=True)
E = TypeVar("E")


class Envelope(msgspec.Struct, Generic[E_co], frozen=True, kw_only=True):
    """A domain event as the feed delivered it: the decoded event, where it sits in the feed and
    in its stream, when it was recorded and the metadata of the command that wrote it. A frozen
    msgspec struct, one per event a projector reads: cheaper to make than a frozen dataclass."""

    event: E_co
    position: int
    event_id: UUID
    stream_id: str
    stream_type: str
    version: int
    metadata: Mapping[str, Any]
    recorded_at: datetime
    checkpoint: FeedCheckpoint


def type_names(handles: Iterable[type[Any]]) -> frozenset[str]:
    """The stored event type names of the domain event classes a projector handles."""
    return frozenset(cls.__name__ for cls in handles)


def narrowed(envelope: Envelope[Any], event: E) -> Envelope[E]:
    """`envelope` typed by its `event`, as a `match` on `envelope.event` bound it."""
    assert envelope.event is event
    return cast("Envelope[E]", envelope)  # a string: no typing subscription at run time


def open_envelopes(
    handles: Iterable[type[Any]], events: Sequence[RecordedEvent]
) -> list[Envelope[Any]]:
    """Decode `events` (already upcast by the store, all of the handled types) with the
    registry's codec into the classes of `handles`; a stored event type none of them names
    raises `KeyError`."""
    by_name = {cls.__name__: cls for cls in handles}
    return [
        Envelope(
            event=decode_as(event.data, by_name[event.event_type]),
            position=event.position,
            event_id=event.event_id,
            stream_id=event.stream_id,
            stream_type=event.stream_type,
            version=event.version,
            metadata=event.metadata,
            recorded_at=event.recorded_at,
            checkpoint=event.checkpoint,
        )
        for event in events
    ]


@dataclass(frozen=True, slots=True)
class Tables:
    """The physical names of a projector's tables: their own, or a rebuild's fresh copies."""

    names: Mapping[str, str]

    def __getitem__(self, logical: str) -> str:
        return self.names[logical]

    @classmethod
    def live(cls, logical: tuple[str, ...]) -> Tables:
        return cls({name: name for name in logical})

    @classmethod
    def rebuilding(cls, logical: tuple[str, ...]) -> Tables:
        return cls({name: rebuild_table(name) for name in logical})


def rebuild_table(name: str) -> str:
    return f"{name}__rebuild"


class Projector(Protocol):
    """Keeps read-model tables up to date from the feed.

    `apply` gets a batch of the events it `handles` (domain event classes; `event_types` are
    their stored names), decoded, in feed order, inside the runner's
    transaction, which also stores the projector's checkpoint: each event takes effect exactly
    once. It writes only to the tables it is given, so a rebuild can run it into fresh copies
    while the live tables keep answering queries.
    """

    name: str
    tables: tuple[str, ...]
    event_types: frozenset[str]

    @property
    def handles(self) -> tuple[type[Any], ...]:
        """The domain event classes it applies; `event_types` holds their names."""
        ...

    async def apply(
        self, connection: AsyncConnection, events: Sequence[Envelope[Any]], tables: Tables
    ) -> None: ...


async def apply_events(
    connection: AsyncConnection,
    projector: Projector,
    events: Sequence[RecordedEvent],
    tables: Tables,
) -> None:
    """Decode the events of `projector`'s types among `events` and apply them to `tables`."""
    relevant = [e for e in events if e.event_type in projector.event_types]
    if relevant:
        await projector.apply(connection, open_envelopes(projector.handles, relevant), tables)


Record = Callable[[AsyncConnection], Awaitable[None]]
"""Writes a process manager's new state, in the transaction that moves its checkpoint."""


class ProcessManager(Protocol):
    """Reacts to events by sending commands; checkpointed and elected like a projector.

    `react` sends the commands a batch of events (those it `handles`, decoded, in feed order) calls
    for, each with a command id derived from its event so that sending it again writes nothing,
    and returns how to record its new state. The runner records it with the new checkpoint; if
    the process dies first, the batch is reacted to again from the state recorded before.
    """

    name: str
    event_types: frozenset[str]

    @property
    def handles(self) -> tuple[type[Any], ...]:
        """The domain event classes it reacts to; `event_types` holds their names."""
        ...

    async def react(self, events: Sequence[Envelope[Any]]) -> Record: ...
