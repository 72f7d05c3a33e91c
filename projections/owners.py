"""The owners read model: which token subject owns each stream.

A stream's owner is the subject its owning event names (`Decider.owners`: a user's
registration, an order's creation, a post, a review). The API reads it to show a user the
events of their own streams and no others; a user's reads of it are bounded by its checkpoint,
so a stream it has not recorded yet is never skipped past (see api/scopes.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.decider import Decider
from projections.checkpoints import read_checkpoint
from projections.projector import Envelope, Tables, type_names
from store.events import FeedCheckpoint


class StreamOwnersProjector:
    """`stream_owners`: one row per owned stream, written once (a stream's owner never
    changes); a batch's rows go in with one statement."""

    name = "owners"
    tables: tuple[str, ...] = ("stream_owners",)

    def __init__(self, deciders: Iterable[Decider[Any, Any, Any]]) -> None:
        self.fields: dict[type[Any], str] = {
            event: field for decider in deciders for event, field in decider.owners.items()
        }
        self.handles: tuple[type[Any], ...] = tuple(self.fields)
        self.event_types = type_names(self.handles)

    async def apply(
        self, connection: AsyncConnection, events: Sequence[Envelope[Any]], tables: Tables
    ) -> None:
        owned = [
            (envelope.stream_id, owner)
            for envelope in events
            if (owner := getattr(envelope.event, self.fields[type(envelope.event)])) is not None
        ]
        if not owned:
            return
        await connection.execute(
            text(
                f"INSERT INTO {tables['stream_owners']} (stream_id, subject) "
                "SELECT * FROM unnest(CAST(:streams AS text[]), CAST(:subjects AS text[])) "
                "ON CONFLICT (stream_id) DO NOTHING"
            ),
            {"streams": [s for s, _ in owned], "subjects": [o for _, o in owned]},
        )


_OWNED = text("SELECT stream_id FROM stream_owners WHERE subject = :subject ORDER BY stream_id")


async def streams_owned_by(
    engine: AsyncEngine, subject: str
) -> tuple[FeedCheckpoint | None, frozenset[str]]:
    """The ids of the streams `subject` owns, complete up to the returned checkpoint of the
    read model (read first: rows recorded meanwhile only add to the set)."""
    async with engine.connect() as connection:
        reached = await read_checkpoint(connection, StreamOwnersProjector.name)
        rows = await connection.execute(_OWNED, {"subject": subject})
        return reached, frozenset(row.stream_id for row in rows)
