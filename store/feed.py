"""Reading the log in order: the gap-safe feed (for anything that keeps a checkpoint) and the
audit log by position (for people).

The gap-safe feed returns only events written by transactions older than every transaction
still in flight, ordered by (transaction id, position) compared as `xid8`: an event that
commits later can never land behind a checkpoint already handed out, and each stream's events
come in version order (appends lock their streams before their first write; see append.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from store.event_rows import EVENT_COLUMNS, decode_event
from store.events import FEED_START, FeedCheckpoint, RecordedEvent
from store.upcasting import Upcasters

HELD_BACK_RETRY = 0.02
"""Seconds before a reader looks again for an event it was told of but could not read yet:
a transaction still in flight holds it back (the feed is gap-safe), and holds are short."""

_FEED = text(
    f"""
    SELECT {EVENT_COLUMNS} FROM events
    WHERE (transaction_id, position) > (CAST(:tx AS text)::xid8, :position)
      AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
      AND (CAST(:stream_id AS text) IS NULL OR stream_id = :stream_id)
      AND (CAST(:stream_ids AS text[]) IS NULL OR stream_id = ANY(CAST(:stream_ids AS text[])))
      AND (CAST(:hidden_type AS text) IS NULL OR stream_type <> :hidden_type)
      AND (CAST(:until_tx AS text) IS NULL
           OR (transaction_id, position) <= (CAST(:until_tx AS text)::xid8, :until_position))
      AND (CAST(:stream_type AS text) IS NULL OR stream_type = :stream_type)
      AND (CAST(:types AS text[]) IS NULL OR event_type = ANY(CAST(:types AS text[])))
    ORDER BY events.transaction_id, events.position
    LIMIT :limit
    """
)

_HEAD = text(
    "SELECT transaction_id::text AS tx, position FROM events "
    "WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) "
    "ORDER BY transaction_id DESC, position DESC LIMIT 1"
)

_CHECKPOINT_AT = text("SELECT transaction_id::text AS tx FROM events WHERE position = :p")

_BY_POSITION = text(
    f"SELECT {EVENT_COLUMNS} FROM events WHERE position > :after ORDER BY position LIMIT :limit"
)


async def read_feed(
    engine: AsyncEngine,
    upcasters: Upcasters,
    after: FeedCheckpoint,
    *,
    limit: int,
    stream_id: str | None = None,
    stream_type: str | None = None,
    types: Sequence[str] | None = None,
    stream_ids: Sequence[str] | None = None,
    hidden_stream_type: str | None = None,
    until: FeedCheckpoint | None = None,
) -> list[RecordedEvent]:
    """Committed events after `after` (and up to `until`), in feed order, optionally filtered
    by the database: of one stream, of any of `stream_ids`, of a stream type or not of
    `hidden_stream_type`, of some event types."""
    async with engine.connect() as connection:
        result = await connection.execute(
            _FEED,
            {
                "tx": str(after.transaction_id),
                "position": after.position,
                "stream_id": stream_id,
                "stream_type": stream_type,
                "types": list(types) if types is not None else None,
                "stream_ids": list(stream_ids) if stream_ids is not None else None,
                "hidden_type": hidden_stream_type,
                "until_tx": None if until is None else str(until.transaction_id),
                "until_position": None if until is None else until.position,
                "limit": limit,
            },
        )
        return [decode_event(upcasters, row) for row in result.mappings()]


async def feed_head(engine: AsyncEngine) -> FeedCheckpoint:
    """The checkpoint of the last event the gap-safe feed can deliver now."""
    async with engine.connect() as connection:
        row = (await connection.execute(_HEAD)).first()
    return FEED_START if row is None else FeedCheckpoint(int(row.tx), row.position)


async def checkpoint_at(engine: AsyncEngine, position: int) -> FeedCheckpoint | None:
    """The feed checkpoint of the event at `position` (0 is the start of the feed)."""
    if position == 0:
        return FEED_START
    async with engine.connect() as connection:
        row = (await connection.execute(_CHECKPOINT_AT, {"p": position})).first()
    return None if row is None else FeedCheckpoint(int(row.tx), position)


async def read_all(
    engine: AsyncEngine, upcasters: Upcasters, *, after_position: int, limit: int
) -> list[RecordedEvent]:
    """Every committed event after `after_position`, by position (not gap-safe)."""
    async with engine.connect() as connection:
        result = await connection.execute(_BY_POSITION, {"after": after_position, "limit": limit})
        return [decode_event(upcasters, row) for row in result.mappings()]
