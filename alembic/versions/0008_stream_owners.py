"""Who owns each stream, and user search that can leave out email addresses.

`stream_owners` belongs to the owners projector: a stream's owner is the token subject its
first event binds it to (a user's own stream, their orders, posts and reviews). A user reads
the events of the streams they own and no others.

`users_view.search` gets weights: name words A, email words B, so a search for someone who
may not read email addresses matches names only (`word:*A`).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE stream_owners (
            stream_id text PRIMARY KEY,
            subject   text NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX stream_owners_subject_idx ON stream_owners (subject, stream_id)")
    op.execute("ALTER TABLE users_view DROP COLUMN search")
    op.execute(
        """
        ALTER TABLE users_view ADD COLUMN search tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('simple', name), 'A')
            || setweight(to_tsvector('simple', replace(email, '@', ' ')), 'B')
        ) STORED
        """
    )
    op.execute("CREATE INDEX users_view_search_idx ON users_view USING gin (search)")


def downgrade() -> None:
    op.execute("ALTER TABLE users_view DROP COLUMN search")
    op.execute(
        """
        ALTER TABLE users_view ADD COLUMN search tsvector GENERATED ALWAYS AS (
            to_tsvector('simple', name || ' ' || replace(email, '@', ' '))
        ) STORED
        """
    )
    op.execute("CREATE INDEX users_view_search_idx ON users_view USING gin (search)")
    op.execute("DROP TABLE stream_owners")
