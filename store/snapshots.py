"""Snapshots: a stream's folded state at a version, so loading it costs the events since."""

from __future__ import annotations

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from store.event_rows import to_json
from store.events import Snapshot

_SAVE = text(
    "INSERT INTO snapshots AS s (stream_id, stream_type, version, state, "
    "state_schema) VALUES (:stream_id, :stream_type, :version, "
    "CAST(:state AS jsonb), :state_schema) "
    "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, "
    "state = excluded.state, state_schema = excluded.state_schema, "
    "recorded_at = now() WHERE s.version < excluded.version"
)

_LOAD = text(
    "SELECT stream_id, stream_type, version, state::text AS state_json, "
    "state_schema FROM snapshots WHERE stream_id = :s"
)


async def save_snapshot(engine: AsyncEngine, snapshot: Snapshot) -> None:
    """Keep the newest snapshot of a stream; an older one never replaces it."""
    async with engine.begin() as connection:
        await connection.execute(
            _SAVE,
            {
                "stream_id": snapshot.stream_id,
                "stream_type": snapshot.stream_type,
                "version": snapshot.version,
                "state": to_json(snapshot.state),
                "state_schema": snapshot.state_schema,
            },
        )


async def load_snapshot(engine: AsyncEngine, stream_id: str) -> Snapshot | None:
    """The stream's newest snapshot, or None."""
    async with engine.connect() as connection:
        row = (await connection.execute(_LOAD, {"s": stream_id})).first()
    if row is None:
        return None
    return Snapshot(
        stream_id=row.stream_id,
        stream_type=row.stream_type,
        version=row.version,
        state=msgspec.json.decode(row.state_json),
        state_schema=row.state_schema,
    )
