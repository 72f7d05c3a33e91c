"""Idempotency records: what a command with a `commandId` wrote the first time."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from store.event_rows import EVENT_COLUMNS, decode_event
from store.events import ProcessedCommand
from store.upcasting import Upcasters

_COMMAND = text(
    "SELECT stream_id, version, positions, command_type, fingerprint "
    "FROM commands WHERE command_id = :command_id"
)

_EVENTS = text(
    f"SELECT {EVENT_COLUMNS} FROM events "
    "WHERE position = ANY(CAST(:positions AS bigint[])) ORDER BY position"
)


async def processed_command(
    engine: AsyncEngine, upcasters: Upcasters, command_id: str
) -> ProcessedCommand | None:
    """The first result of `command_id`, if a command with that id wrote events."""
    async with engine.connect() as connection:
        row = (await connection.execute(_COMMAND, {"command_id": command_id})).first()
        if row is None:
            return None
        result = await connection.execute(_EVENTS, {"positions": list(row.positions)})
        events = [decode_event(upcasters, r) for r in result.mappings()]
    return ProcessedCommand(
        command_id=command_id,
        stream_id=row.stream_id,
        version=row.version,
        events=events,
        command_type=row.command_type,
        fingerprint=row.fingerprint,
    )
