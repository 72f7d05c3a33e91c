"""How old the oldest event each checkpoint has not yet applied is, and where the feed ends.

A checkpoint's lag in events is a count (`checkpoints.statuses`); its lag in time is what an
operator alerts on: now minus the `recorded_at` of the first event after it in feed order, 0
when it is caught up. Rebuilds (`<name>:rebuild`) are included.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# The first unapplied event in feed order, found through the feed's index (transaction_id,
# position): one index probe a checkpoint, however far behind it is.
_OLDEST_UNAPPLIED = text(
    "SELECT c.name, COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - ("
    "SELECT e.recorded_at FROM events e "
    "WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position) "
    "ORDER BY e.transaction_id, e.position LIMIT 1)), 0) AS seconds "
    "FROM projection_checkpoints c"
)
_HEAD = text("SELECT COALESCE(max(position), 0) FROM events")


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedLag:
    seconds: dict[str, float]
    """Each checkpoint's age of its oldest unapplied event, in seconds (0 when caught up)."""
    head: int
    """The newest event's position (0 for an empty log)."""


async def feed_lag(engine: AsyncEngine) -> FeedLag:
    """Every checkpoint's lag in seconds, and the feed's head."""
    async with engine.connect() as connection:
        rows = (await connection.execute(_OLDEST_UNAPPLIED)).all()
        head = (await connection.execute(_HEAD)).scalar_one()
    return FeedLag(seconds={row.name: max(0.0, float(row.seconds)) for row in rows}, head=head)
