"""The fulfilment process's state, one row per placed order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Written in the transaction that moves the process's checkpoint, like a read model.
    op.execute(
        """
        CREATE TABLE fulfilment_state (
            order_id   text PRIMARY KEY,
            state      jsonb NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE fulfilment_state")
