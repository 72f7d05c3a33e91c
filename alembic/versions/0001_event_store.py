"""The event store: events, streams, snapshots, processed commands, append-only guard.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE streams (
            stream_id   text PRIMARY KEY,
            stream_type text NOT NULL,
            version     integer NOT NULL CHECK (version >= 0),
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # transaction_id is the writer's xid8: the gap-safe feed orders by (transaction_id,
    # position) and reads only below the oldest transaction still in flight.
    op.execute(
        """
        CREATE TABLE events (
            position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id       uuid NOT NULL UNIQUE,
            stream_id      text NOT NULL,
            stream_type    text NOT NULL,
            version        integer NOT NULL CHECK (version >= 1),
            event_type     text NOT NULL,
            schema_version integer NOT NULL DEFAULT 1,
            data           jsonb NOT NULL,
            metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
            transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
            recorded_at    timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
        )
        """
    )
    op.execute("CREATE INDEX events_feed_idx ON events (transaction_id, position)")
    op.execute("CREATE INDEX events_type_idx ON events (event_type, position)")
    op.execute(
        """
        CREATE TABLE snapshots (
            stream_id    text PRIMARY KEY,
            stream_type  text NOT NULL,
            version      integer NOT NULL,
            state        jsonb NOT NULL,
            state_schema integer NOT NULL,
            recorded_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # One row per command that wrote events: a retried commandId finds its first result here.
    op.execute(
        """
        CREATE TABLE commands (
            command_id  text PRIMARY KEY,
            stream_id   text NOT NULL,
            version     integer NOT NULL,
            positions   bigint[] NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE FUNCTION events_are_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'events are append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER events_append_only
        BEFORE UPDATE OR DELETE ON events
        FOR EACH ROW EXECUTE FUNCTION events_are_append_only()
        """
    )
    op.execute(
        """
        CREATE TRIGGER events_no_truncate
        BEFORE TRUNCATE ON events
        FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only()
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE commands")
    op.execute("DROP TABLE snapshots")
    op.execute("DROP TABLE events")
    op.execute("DROP FUNCTION events_are_append_only()")
    op.execute("DROP TABLE streams")
