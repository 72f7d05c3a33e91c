"""The reviews read model: each review, and each reviewed product's count and sum of ratings.

Both tables belong to the reviews projector alone (the products projector never reads or
writes them), so either read model can be rebuilt without the other.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE reviews_view (
            id         text PRIMARY KEY,
            product_id text NOT NULL,
            user_id    text NOT NULL,
            rating     smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
            text       text NOT NULL,
            version    integer NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX reviews_view_product_idx ON reviews_view (product_id, created_at, id)")
    op.execute(
        """
        CREATE TABLE product_ratings (
            product_id   text PRIMARY KEY,
            review_count bigint NOT NULL,
            rating_sum   bigint NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE product_ratings")
    op.execute("DROP TABLE reviews_view")
