"""How far each running rebuild has come: its `<name>:rebuild` checkpoint against the feed's head.

A rebuild replays the log from the first event into fresh tables (projections/rebuild.py); its
checkpoint moves from position 0 towards the newest event's. The fraction is by position, not
by count of events: positions come from a sequence, so gaps make it approximate, never wrong
by more than the gaps, and it needs no count of the log.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.rebuild import rebuild_checkpoint

SUFFIX = rebuild_checkpoint("")
"""`:rebuild`: what a rebuild's checkpoint adds to its read model's name."""

_REBUILDS = text(
    "SELECT left(r.name, -length(:suffix)) AS name, r.position, "
    "(SELECT max(position) FROM events) AS head "
    "FROM projection_checkpoints r WHERE right(r.name, length(:suffix)) = :suffix"
)


async def rebuild_progress(engine: AsyncEngine) -> dict[str, float]:
    """Each read model being rebuilt, by name, with the fraction of the log replayed (0..1)."""
    async with engine.connect() as connection:
        rows = (await connection.execute(_REBUILDS, {"suffix": SUFFIX})).all()
    return {
        row.name: 1.0 if not row.head else min(1.0, max(0.0, row.position / row.head))
        for row in rows
    }
