"""Projection checkpoints and the users read models.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A projector's place in the gap-safe feed, written in the same transaction as its rows.
    op.execute(
        """
        CREATE TABLE projection_checkpoints (
            name            text PRIMARY KEY,
            transaction_id  xid8 NOT NULL DEFAULT '0',
            position        bigint NOT NULL DEFAULT 0,
            status          text NOT NULL DEFAULT 'running',
            error           text,
            failed_position bigint,
            updated_at      timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE users_view (
            id         text PRIMARY KEY,
            email      text NOT NULL,
            name       text NOT NULL,
            age        integer NOT NULL,
            age_group  text NOT NULL,
            version    integer NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            search     tsvector GENERATED ALWAYS AS (
                to_tsvector('simple', name || ' ' || replace(email, '@', ' '))
            ) STORED
        )
        """
    )
    op.execute("CREATE INDEX users_view_search_idx ON users_view USING gin (search)")
    op.execute("CREATE INDEX users_view_age_idx ON users_view (age, id)")
    op.execute("CREATE INDEX users_view_created_idx ON users_view (created_at, id)")
    op.execute(
        """
        CREATE TABLE user_summary (
            id          integer PRIMARY KEY CHECK (id = 1),
            total_users bigint NOT NULL,
            age_sum     bigint NOT NULL,
            teen        bigint NOT NULL,
            adult       bigint NOT NULL,
            senior      bigint NOT NULL
        )
        """
    )
    # The summary's own memory of each user's age, so an update can move a user between groups.
    op.execute("CREATE TABLE user_summary_ages (id text PRIMARY KEY, age integer NOT NULL)")


def downgrade() -> None:
    op.execute("DROP TABLE user_summary_ages")
    op.execute("DROP TABLE user_summary")
    op.execute("DROP TABLE users_view")
    op.execute("DROP TABLE projection_checkpoints")
