"""A commandId stands for one command: its type and a fingerprint of its input are recorded.

A retry with the same commandId gets the first result only if it is the same command (same
type, same target stream, same fingerprint); a different command under a used id is refused.
Commands recorded before this migration have neither column: they are matched on their target
alone (the one thing they recorded), see `ProcessedCommand.is_run_of`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_SIGNATURE = (
    "append_to_streams(text[], text[], integer[], uuid[], integer[], integer[], text[], "
    "integer[], jsonb[], jsonb, text)"
)


def upgrade() -> None:
    op.execute("ALTER TABLE commands ADD COLUMN command_type text, ADD COLUMN fingerprint text")
    op.execute(f"DROP FUNCTION {_OLD_SIGNATURE}")
    op.execute(APPEND_FUNCTION)


# The function of migration 0001 (read its comment for what it guarantees), with the command's
# type and fingerprint recorded beside its id. Still one statement, one round trip.
APPEND_FUNCTION = """
CREATE FUNCTION append_to_streams(
    p_stream_ids text[], p_stream_types text[], p_expected integer[],
    p_event_ids uuid[], p_event_streams integer[], p_event_nths integer[],
    p_event_types text[], p_schema_versions integer[], p_data jsonb[], p_metadata jsonb,
    p_command_id text, p_command_type text, p_fingerprint text
) RETURNS TABLE ("position" bigint, version integer, transaction_id text,
                 recorded_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_first integer[] := '{}';
    v_count integer;
    v_version integer;
    v_actual integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(s, 0))
    FROM unnest(p_stream_ids) AS s ORDER BY s;

    FOR i IN 1 .. cardinality(p_stream_ids) LOOP
        SELECT count(*) INTO v_count FROM unnest(p_event_streams) AS x WHERE x = i;
        v_version := NULL;
        IF p_expected[i] = 0 THEN
            INSERT INTO streams (stream_id, stream_type, version)
            VALUES (p_stream_ids[i], p_stream_types[i], v_count);
            v_version := v_count;
        ELSIF p_expected[i] = -1 THEN
            INSERT INTO streams AS s (stream_id, stream_type, version)
            VALUES (p_stream_ids[i], p_stream_types[i], v_count)
            ON CONFLICT (stream_id)
                DO UPDATE SET version = s.version + v_count, updated_at = now()
            RETURNING s.version INTO v_version;
        ELSE
            UPDATE streams AS s SET version = s.version + v_count, updated_at = now()
            WHERE s.stream_id = p_stream_ids[i]
              AND (p_expected[i] = -2 OR s.version = p_expected[i])
            RETURNING s.version INTO v_version;
        END IF;
        IF v_version IS NULL THEN
            SELECT s.version INTO v_actual FROM streams AS s WHERE s.stream_id = p_stream_ids[i];
            RAISE EXCEPTION 'wrong expected version'
                USING ERRCODE = 'CH409',
                      DETAIL = json_build_object('stream_id', p_stream_ids[i],
                                                 'actual', v_actual)::text;
        END IF;
        v_first[i] := v_version - v_count + 1;
    END LOOP;

    RETURN QUERY
    WITH written AS (
        INSERT INTO events (event_id, stream_id, stream_type, version, event_type,
                            schema_version, data, metadata)
        SELECT e.event_id, p_stream_ids[e.stream_index], p_stream_types[e.stream_index],
               v_first[e.stream_index] + e.nth - 1, e.event_type, e.schema_version, e.data,
               p_metadata
        FROM unnest(p_event_ids, p_event_streams, p_event_nths, p_event_types,
                    p_schema_versions, p_data)
             AS e(event_id, stream_index, nth, event_type, schema_version, data)
        RETURNING events.position, events.stream_id, events.version,
                  events.transaction_id, events.recorded_at
    ),
    recorded AS (
        INSERT INTO commands (command_id, stream_id, version, positions, command_type,
                              fingerprint)
        SELECT p_command_id, p_stream_ids[1],
               max(w.version) FILTER (WHERE w.stream_id = p_stream_ids[1]),
               array_agg(w.position ORDER BY w.position), p_command_type, p_fingerprint
        FROM written AS w
        HAVING p_command_id IS NOT NULL
    )
    SELECT w.position, w.version, w.transaction_id::text, w.recorded_at
    FROM written AS w
    ORDER BY w.position;
END
$$
"""


def downgrade() -> None:
    op.execute("DROP FUNCTION append_to_streams(" + _NEW_PARAMETERS + ")")
    op.execute(_first_migration().APPEND_FUNCTION)
    op.execute("ALTER TABLE commands DROP COLUMN fingerprint, DROP COLUMN command_type")


_NEW_PARAMETERS = (
    "text[], text[], integer[], uuid[], integer[], integer[], text[], integer[], jsonb[], "
    "jsonb, text, text, text"
)


def _first_migration() -> Any:
    """Migration 0001, whose function the downgrade restores word for word."""
    path = Path(__file__).with_name("0001_event_store.py")
    spec = importlib.util.spec_from_file_location("chronicle_migration_0001", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
