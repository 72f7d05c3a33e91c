"""Parked events: the events a read model set aside instead of stopping at them.

With `CHRONICLE_ON_PROJECTION_ERROR=park`, an event a projector still fails on after its
retries is parked here (with the reason and the number of attempts) and the projector goes on.
So that each stream's events still take effect in version order, the later events of a parked
event's stream are parked behind it, for that read model only; `chronicle projections retry`
replays a projection's parked events in order and `skip` drops one (see projections/parking.py).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE parked_events (
            projection text NOT NULL,
            position   bigint NOT NULL,
            stream_id  text NOT NULL,
            event_type text NOT NULL,
            error      text NOT NULL,
            attempts   int NOT NULL,
            parked_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (projection, position)
        )
        """
    )
    op.execute("CREATE INDEX parked_events_stream_idx ON parked_events (projection, stream_id)")


def downgrade() -> None:
    op.execute("DROP TABLE parked_events")
