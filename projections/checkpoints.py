"""The `projection_checkpoints` table: where each projector, process manager and rebuild
stands in the feed, whether it runs or stopped failing, and how far behind it is.

A checkpoint is the (transaction id, position) pair of the last event applied. It is written
and compared as `xid8`, never as text; it is read out as text under a name of its own (`tx`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.events import FeedCheckpoint, RecordedEvent

log = logging.getLogger(__name__)

REASON_LENGTH = 80


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectionStatus:
    name: str
    position: int
    lag: int
    status: str
    error: str | None
    failed_position: int | None
    updated_at: datetime | None
    parked: int = 0
    """How many events it has parked (projections/parking.py)."""


_READ = text(
    "SELECT transaction_id::text AS tx, position, status FROM projection_checkpoints "
    "WHERE name = :name"
)
_LOCK = text(
    "SELECT transaction_id::text AS tx, position, status "
    "FROM projection_checkpoints WHERE name = :name FOR UPDATE"
)
_RUNNING = text(
    "SELECT name, transaction_id::text AS tx, position "
    "FROM projection_checkpoints WHERE status = 'running'"
)
_SAVE = text(
    "UPDATE projection_checkpoints SET transaction_id = CAST(:tx AS text)::xid8, "
    "position = :position, updated_at = now() WHERE name = :name"
)
_MOVE = text(
    "UPDATE projection_checkpoints SET transaction_id = CAST(:tx AS text)::xid8, "
    "position = :position, updated_at = now() WHERE name = :name "
    "AND status = 'running' AND transaction_id = CAST(:old_tx AS text)::xid8 "
    "AND position = :old_position"
)
_CREATE = text(
    "INSERT INTO projection_checkpoints (name) VALUES (:name) ON CONFLICT (name) DO NOTHING"
)
_FAIL = text(
    "UPDATE projection_checkpoints SET status = 'failed', error = :error, "
    "failed_position = :position, updated_at = now() WHERE name = :name"
)
_RESTART = text(
    "UPDATE projection_checkpoints SET status = 'running', error = NULL, "
    "failed_position = NULL, updated_at = now() WHERE name = :name"
)
_STATUSES = text(
    "SELECT c.name, c.position, c.error, c.failed_position, c.updated_at, "
    "CASE WHEN c.status = 'running' AND EXISTS (SELECT 1 FROM "
    "projection_checkpoints r WHERE r.name = c.name || '\\:rebuild') "
    "THEN 'rebuilding' ELSE c.status END AS status, "
    "(SELECT count(*) FROM events e "
    "WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)) AS lag, "
    "(SELECT count(*) FROM parked_events p WHERE p.projection = c.name) AS parked "
    "FROM projection_checkpoints c "
    "WHERE :all OR c.name NOT LIKE '%\\:rebuild' ORDER BY c.name"
)


async def read_checkpoint(
    connection: AsyncConnection, name: str, *, only_running: bool = False
) -> FeedCheckpoint | None:
    """The checkpoint `name`; None if missing (or, with `only_running`, not running)."""
    row = (await connection.execute(_READ, {"name": name})).first()
    if row is None or (only_running and row.status != "running"):
        return None
    return FeedCheckpoint(int(row.tx), row.position)


async def lock_checkpoint(
    connection: AsyncConnection, name: str, *, only_running: bool = True
) -> FeedCheckpoint | None:
    """The checkpoint `name`, locked for this transaction; None if missing or not running."""
    row = (await connection.execute(_LOCK, {"name": name})).first()
    if row is None or (only_running and row.status != "running"):
        return None
    return FeedCheckpoint(int(row.tx), row.position)


async def running_places(engine: AsyncEngine) -> dict[str, FeedCheckpoint]:
    """Where every running checkpoint stands (rebuilds' included)."""
    async with engine.connect() as connection:
        rows = await connection.execute(_RUNNING)
        return {row.name: FeedCheckpoint(int(row.tx), row.position) for row in rows}


async def save_checkpoint(
    connection: AsyncConnection, name: str, checkpoint: FeedCheckpoint
) -> None:
    """Move `name` to `checkpoint`, in the caller's transaction (which holds it locked)."""
    await connection.execute(
        _SAVE,
        {"tx": str(checkpoint.transaction_id), "position": checkpoint.position, "name": name},
    )


async def move_checkpoints(
    engine: AsyncEngine, moves: Sequence[tuple[str, FeedCheckpoint, FeedCheckpoint]]
) -> None:
    """Move each (name, from, to) checkpoint that is still running at `from` to `to`."""
    async with engine.begin() as connection:
        await connection.execute(
            _MOVE,
            [
                {
                    "name": name,
                    "old_tx": str(start.transaction_id),
                    "old_position": start.position,
                    "tx": str(end.transaction_id),
                    "position": end.position,
                }
                for name, start, end in moves
            ],
        )


async def ensure_checkpoints(engine: AsyncEngine, names: Sequence[str]) -> None:
    """Create a checkpoint at the start of the feed for each name that has none."""
    async with engine.begin() as connection:
        for name in names:
            await connection.execute(_CREATE, {"name": name})


async def stop_at(
    engine: AsyncEngine,
    name: str,
    place: FeedCheckpoint,
    event: RecordedEvent,
    error: BaseException,
) -> None:
    """Mark `name` failed at `event` (the one after `place`) because of `error`, and log the
    trace; unless the checkpoint has moved from `place` meanwhile (another runner took it on)."""
    async with engine.begin() as connection:
        if await lock_checkpoint(connection, name) != place:
            return
        log.error(
            "projection %s stopped at position %s (%s of %s)",
            name,
            event.position,
            event.event_type,
            event.stream_id,
            exc_info=error,
        )
        await connection.execute(
            _FAIL,
            {"error": failure_reason(error, event), "position": event.position, "name": name},
        )


async def restart(engine: AsyncEngine, name: str) -> None:
    """Set `name` running again from where it stopped."""
    async with engine.begin() as connection:
        await connection.execute(_RESTART, {"name": name})


async def statuses(engine: AsyncEngine, *, include_rebuilds: bool) -> list[ProjectionStatus]:
    """Each checkpoint's place, lag and status (`rebuilding` while a rebuild runs)."""
    async with engine.connect() as connection:
        rows = await connection.execute(_STATUSES, {"all": include_rebuilds})
        return [
            ProjectionStatus(
                name=row.name,
                position=row.position,
                lag=row.lag,
                status=row.status,
                error=row.error,
                failed_position=row.failed_position,
                updated_at=row.updated_at,
                parked=row.parked,
            )
            for row in rows
        ]


def failure_reason(error: BaseException | None, event: RecordedEvent) -> str:
    """What any client of `projections { error }` may read: the exception's kind and the
    event. A database error's text holds the statement and its parameters, which only the
    server log keeps; any other's first line is cut short."""
    if isinstance(error, StatementError):
        # the driver's own exception (asyncpg's) names the failure best
        orig = error.orig
        cause = orig if orig is None or orig.__cause__ is None else orig.__cause__
        kind = type(error).__name__ + ("" if cause is None else f" ({type(cause).__name__})")
    else:
        line = str(error).partition("\n")[0]
        if len(line) > REASON_LENGTH:
            line = line[:REASON_LENGTH] + "…"
        kind = f"{type(error).__name__}: {line}" if line else type(error).__name__
    return f"{kind} at position {event.position} ({event.event_type}): see the server log"
