"""What the runner runs: projectors (tables kept from the feed) and process managers (commands
sent in answer to it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from store.events import RecordedEvent


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

    `apply` gets a batch of events of its `event_types`, in feed order, inside the runner's
    transaction, which also stores the projector's checkpoint: each event takes effect exactly
    once. It writes only to the tables it is given, so a rebuild can run it into fresh copies
    while the live tables keep answering queries.
    """

    name: str
    tables: tuple[str, ...]
    event_types: frozenset[str]

    async def apply(
        self, connection: AsyncConnection, events: Sequence[RecordedEvent], tables: Tables
    ) -> None: ...


Record = Callable[[AsyncConnection], Awaitable[None]]
"""Writes a process manager's new state, in the transaction that moves its checkpoint."""


class ProcessManager(Protocol):
    """Reacts to events by sending commands; checkpointed and elected like a projector.

    `react` sends the commands a batch of events (of its `event_types`, in feed order) calls
    for, each with a command id derived from its event so that sending it again writes nothing,
    and returns how to record its new state. The runner records it with the new checkpoint; if
    the process dies first, the batch is reacted to again from the state recorded before.
    """

    name: str
    event_types: frozenset[str]

    async def react(self, events: Sequence[RecordedEvent]) -> Record: ...
