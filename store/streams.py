"""Reading one stream: its version (from `streams`), its events in version order, its last
event's position."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from store.event_rows import EVENT_COLUMNS, decode_event
from store.events import RecordedEvent
from store.upcasting import Upcasters

_VERSION = text("SELECT stream_type, version FROM streams WHERE stream_id = :s")

_EVENTS = text(
    f"SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = :stream_id "
    "AND version >= :from_version "
    "AND (CAST(:to_version AS integer) IS NULL OR version <= :to_version) "
    "AND (CAST(:until AS timestamptz) IS NULL OR recorded_at <= :until) "
    "ORDER BY version"
)

_LAST_POSITION = text(
    "SELECT position FROM events WHERE stream_id = :s ORDER BY version DESC LIMIT 1"
)


async def stream_version(engine: AsyncEngine, stream_id: str) -> tuple[str, int] | None:
    """The stream's type and current version, or None if it has no events."""
    async with engine.connect() as connection:
        row = (await connection.execute(_VERSION, {"s": stream_id})).first()
    return None if row is None else (row.stream_type, row.version)


async def read_stream(
    engine: AsyncEngine,
    upcasters: Upcasters,
    stream_id: str,
    *,
    from_version: int,
    to_version: int | None,
    recorded_until: datetime | None,
) -> list[RecordedEvent]:
    """A stream's events from `from_version` on, in version order, upcast."""
    async with engine.connect() as connection:
        result = await connection.execute(
            _EVENTS,
            {
                "stream_id": stream_id,
                "from_version": from_version,
                "to_version": to_version,
                "until": recorded_until,
            },
        )
        return [decode_event(upcasters, row) for row in result.mappings()]


async def last_position_of(engine: AsyncEngine, stream_id: str) -> int | None:
    """The position of the stream's last event, or None if it has none."""
    async with engine.connect() as connection:
        return (await connection.execute(_LAST_POSITION, {"s": stream_id})).scalar()
