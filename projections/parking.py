"""Parked events: what a read model set aside instead of stopping at it (`parked_events`).

With `CHRONICLE_ON_PROJECTION_ERROR=park`, an event a projector still fails on after its
retries (projections/workers.py) is parked here with the reason and the attempts made, and the
projector's checkpoint moves past it: the read model goes on with the rest of the feed.

Each stream's events must still take effect in version order, so a parked event holds the
later events of its stream, for that read model only: every batch parks the events of streams
that already have one parked, with the reason "held behind position N of the same stream", in
the transaction that moves the checkpoint. Other streams, and other read models, are not held.

`retry` replays a projection's parked events in order (by position, so each stream's in
version order), each under a savepoint, in one transaction holding the projection's checkpoint
locked (the runner's batches wait for it, so no event of a stream can overtake the replay):
those that apply are deleted; one that fails again stays parked, with its new reason and one
more attempt, and so do the later ones of its stream, held behind it. `skip` drops one parked
event and nothing else: events held behind it stay parked until a retry applies them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.checkpoints import failure_reason, lock_checkpoint
from projections.projector import Projector, Tables, apply_events
from store.event_rows import EVENT_COLUMNS, decode_event
from store.events import RecordedEvent
from store.upcasting import Upcasters

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParkedEvent:
    projection: str
    position: int
    stream_id: str
    event_type: str
    error: str
    attempts: int
    """How many times applying it failed; 0 for an event only held behind another."""
    parked_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Retried:
    """What a retry did: how many parked events it applied and how many stay parked."""

    applied: int
    still_parked: int


def held_behind(position: int) -> str:
    return f"held behind position {position} of the same stream"


_PARK = text(
    "INSERT INTO parked_events (projection, position, stream_id, event_type, error, attempts) "
    "SELECT :projection, p.position, p.stream_id, p.event_type, :error, :attempts "
    "FROM unnest(CAST(:positions AS bigint[]), CAST(:streams AS text[]), "
    "CAST(:types AS text[])) AS p(position, stream_id, event_type) "
    "ON CONFLICT (projection, position) DO UPDATE SET error = excluded.error, "
    "attempts = excluded.attempts"
)
_HELD_STREAMS = text(
    "SELECT stream_id, min(position) AS position FROM parked_events "
    "WHERE projection = :projection AND stream_id = ANY(CAST(:streams AS text[])) "
    "GROUP BY stream_id"
)
_LIST = text(
    "SELECT projection, position, stream_id, event_type, error, attempts, parked_at "
    "FROM parked_events WHERE CAST(:projection AS text) IS NULL OR projection = :projection "
    "ORDER BY projection, position"
)
_DELETE = text(
    "DELETE FROM parked_events WHERE projection = :projection "
    "AND position = ANY(CAST(:positions AS bigint[]))"
)
_FAILED_AGAIN = text(
    "UPDATE parked_events SET error = :error, attempts = attempts + 1 "
    "WHERE projection = :projection AND position = :position"
)
_HOLD = text(
    "UPDATE parked_events SET error = :error WHERE projection = :projection "
    "AND position = ANY(CAST(:positions AS bigint[]))"
)
_EVENTS = text(
    f"SELECT {EVENT_COLUMNS} FROM events WHERE position = ANY(CAST(:positions AS bigint[])) "
    "ORDER BY position"
)
_HAND_OVER = text("UPDATE parked_events SET projection = :to WHERE projection = :from")
_CLEAR = text("DELETE FROM parked_events WHERE projection = :projection")


async def park(
    connection: AsyncConnection,
    projection: str,
    events: Sequence[RecordedEvent],
    *,
    error: str,
    attempts: int,
) -> None:
    """Park `events` for `projection` with `error`, in the caller's transaction."""
    if not events:
        return
    await connection.execute(
        _PARK,
        {
            "projection": projection,
            "positions": [e.position for e in events],
            "streams": [e.stream_id for e in events],
            "types": [e.event_type for e in events],
            "error": error,
            "attempts": attempts,
        },
    )


async def hold_back(
    connection: AsyncConnection, projection: str, events: Sequence[RecordedEvent]
) -> list[RecordedEvent]:
    """Park those of `events` whose stream has an event parked for `projection` (each stream's
    behind its first parked one); return the others, to be applied."""
    if not events:
        return []
    streams = sorted({e.stream_id for e in events})
    rows = await connection.execute(_HELD_STREAMS, {"projection": projection, "streams": streams})
    first_parked = {row.stream_id: row.position for row in rows}
    if not first_parked:
        return list(events)
    held = [e for e in events if e.stream_id in first_parked]
    for blocking in sorted(set(first_parked.values())):
        await park(
            connection,
            projection,
            [e for e in held if first_parked[e.stream_id] == blocking],
            error=held_behind(blocking),
            attempts=0,
        )
    return [e for e in events if e.stream_id not in first_parked]


async def parked_events(engine: AsyncEngine, projection: str | None = None) -> list[ParkedEvent]:
    """The events parked for `projection` (or for every projection), in order."""
    async with engine.connect() as connection:
        rows = await connection.execute(_LIST, {"projection": projection})
        return [
            ParkedEvent(
                projection=row.projection,
                position=row.position,
                stream_id=row.stream_id,
                event_type=row.event_type,
                error=row.error,
                attempts=row.attempts,
                parked_at=row.parked_at,
            )
            for row in rows
        ]


async def skip(engine: AsyncEngine, projection: str, position: int) -> bool:
    """Drop the event at `position` parked for `projection`; False if there is none. Events
    held behind it stay parked."""
    async with engine.begin() as connection:
        await lock_checkpoint(connection, projection, only_running=False)
        result = await connection.execute(
            _DELETE, {"projection": projection, "positions": [position]}
        )
    dropped = bool(result.rowcount)
    if dropped:
        log.warning("projection %s skipped its parked event at position %s", projection, position)
    return dropped


async def retry(
    engine: AsyncEngine,
    upcasters: Upcasters,
    projector: Projector,
    *,
    projection: str | None = None,
    tables: Tables | None = None,
) -> Retried:
    """Replay the events parked for `projection` (the projector's own name by default) into
    `tables` (its live tables by default), in order; see the module docstring."""
    name = projection or projector.name
    tables = tables or Tables.live(projector.tables)
    applied: list[int] = []
    blocked: dict[str, int] = {}  # stream -> the position that failed again
    held: dict[int, list[int]] = {}
    async with engine.begin() as connection:
        await lock_checkpoint(connection, name, only_running=False)
        parked = (await connection.execute(_LIST, {"projection": name})).all()
        rows = await connection.execute(_EVENTS, {"positions": [row.position for row in parked]})
        for event in [decode_event(upcasters, row) for row in rows.mappings()]:
            if (blocking := blocked.get(event.stream_id)) is not None:
                held.setdefault(blocking, []).append(event.position)
                continue
            try:
                async with connection.begin_nested():
                    await apply_events(connection, projector, [event], tables)
            except Exception as error:
                log.warning(
                    "projection %s failed again on its parked event at position %s",
                    name,
                    event.position,
                    exc_info=error,
                )
                blocked[event.stream_id] = event.position
                await connection.execute(
                    _FAILED_AGAIN,
                    {
                        "projection": name,
                        "position": event.position,
                        "error": failure_reason(error, event),
                    },
                )
                continue
            applied.append(event.position)
        await connection.execute(_DELETE, {"projection": name, "positions": applied})
        for blocking, positions in held.items():
            await connection.execute(
                _HOLD, {"projection": name, "positions": positions, "error": held_behind(blocking)}
            )
    still_parked = len(parked) - len(applied)
    log.info(
        "projection %s: %s parked events applied, %s still parked", name, len(applied), still_parked
    )
    return Retried(applied=len(applied), still_parked=still_parked)


async def hand_over(connection: AsyncConnection, rebuilt: str, live: str) -> None:
    """A rebuild swapped in: its parked events become the live projection's, whose own are
    dropped (they were parked against the tables just replaced)."""
    await connection.execute(_CLEAR, {"projection": live})
    await connection.execute(_HAND_OVER, {"from": rebuilt, "to": live})


async def clear(connection: AsyncConnection, projection: str) -> None:
    """Forget every event parked for `projection` (a rebuild starting again from the first)."""
    await connection.execute(_CLEAR, {"projection": projection})
