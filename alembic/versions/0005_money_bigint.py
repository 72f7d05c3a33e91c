"""Every money column is 64-bit: a line's total (quantity x unit price) and an order's total
must never overflow a 32-bit integer inside the projector's SQL.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE products_view ALTER COLUMN price_cents TYPE bigint")
    op.execute("ALTER TABLE order_lines_view ALTER COLUMN unit_price_cents TYPE bigint")


def downgrade() -> None:
    op.execute("ALTER TABLE order_lines_view ALTER COLUMN unit_price_cents TYPE integer")
    op.execute("ALTER TABLE products_view ALTER COLUMN price_cents TYPE integer")
