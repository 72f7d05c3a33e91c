"""Rebuild copies made and swapped in by the schema owner, so the serving role needs no DDL.

A rebuild fills a fresh copy of each read-model table and renames it into place (see
projections/rebuild.py). Renaming and dropping a table is its owner's right alone, and the
owner is the role that ran the migrations; the service runs as a role that only reads and
writes rows. These two functions run with the owner's rights (SECURITY DEFINER) and do exactly
the rebuild's DDL, nothing else:

- `create_rebuild_copy(t)` (re)creates `t__rebuild` LIKE `t` INCLUDING ALL and gives it the
  same grants as `t`, so the serving role can fill it;
- `swap_in_rebuild_copy(t)` renames `t__rebuild` to `t` and drops the old `t`.

Replacing a table's rows wholesale is what TRUNCATE does, so the caller (its login role) must
hold TRUNCATE and INSERT on `t`: `chronicle grants` gives those on read-model tables only, never
on `events`. A table with triggers or row security is refused (a copy would not carry them).
Their search path is the schema, then pg_temp, so a caller's temporary table cannot stand in for
a read model.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Which table `p_table` names (in this schema), once the caller may replace its rows.
CHECK_FUNCTION = """
CREATE FUNCTION rebuildable_table(p_table text) RETURNS oid
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_table oid;
BEGIN
    SELECT c.oid INTO v_table
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relname = p_table AND c.relkind = 'r'
      AND c.relpersistence = 'p';
    IF v_table IS NULL THEN
        RAISE EXCEPTION 'no table % to rebuild', p_table USING ERRCODE = 'undefined_table';
    END IF;
    IF NOT (has_table_privilege(session_user, v_table, 'TRUNCATE')
            AND has_table_privilege(session_user, v_table, 'INSERT')) THEN
        RAISE EXCEPTION 'role % may not rebuild %: it needs TRUNCATE and INSERT on it',
            session_user, p_table USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = v_table AND NOT tgisinternal)
       OR (SELECT relrowsecurity FROM pg_class WHERE oid = v_table) THEN
        RAISE EXCEPTION 'table % has triggers or row security, which a copy would not keep',
            p_table USING ERRCODE = 'feature_not_supported';
    END IF;
    -- A longer name would be cut to 63 bytes, and the copy could name the table itself.
    IF octet_length(p_table || '__rebuild') > 63 THEN
        RAISE EXCEPTION 'table name % is too long to rebuild', p_table
            USING ERRCODE = 'name_too_long';
    END IF;
    RETURN v_table;
END
$$
"""

CREATE_FUNCTION = """
CREATE FUNCTION create_rebuild_copy(p_table text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_table oid := rebuildable_table(p_table);
    v_copy text := p_table || '__rebuild';
    v_grant record;
BEGIN
    EXECUTE format('DROP TABLE IF EXISTS %I.%I', current_schema(), v_copy);
    EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING ALL)',
                   current_schema(), v_copy, current_schema(), p_table);
    FOR v_grant IN
        SELECT a.privilege_type, a.grantee, a.is_grantable
        FROM pg_class AS c, aclexplode(c.relacl) AS a
        WHERE c.oid = v_table AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT %s ON TABLE %I.%I TO %s%s', v_grant.privilege_type,
                       current_schema(), v_copy,
                       CASE WHEN v_grant.grantee = 0 THEN 'PUBLIC'
                            ELSE v_grant.grantee::regrole::text END,
                       CASE WHEN v_grant.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    RETURN v_copy;
END
$$
"""

SWAP_FUNCTION = """
CREATE FUNCTION swap_in_rebuild_copy(p_table text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_table oid := rebuildable_table(p_table);
    v_copy text := p_table || '__rebuild';
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relname = v_copy
          AND c.relowner = current_user::regrole
    ) THEN
        RAISE EXCEPTION 'no rebuild copy of %: create_rebuild_copy makes it', p_table
            USING ERRCODE = 'undefined_table';
    END IF;
    EXECUTE format('ALTER TABLE %I.%I RENAME TO %I', current_schema(), p_table,
                   p_table || '__old');
    EXECUTE format('ALTER TABLE %I.%I RENAME TO %I', current_schema(), v_copy, p_table);
    EXECUTE format('DROP TABLE %I.%I', current_schema(), p_table || '__old');
END
$$
"""

SIGNATURES = (
    "rebuildable_table(text)",
    "create_rebuild_copy(text)",
    "swap_in_rebuild_copy(text)",
)


def upgrade() -> None:
    op.execute(CHECK_FUNCTION)
    op.execute(CREATE_FUNCTION)
    op.execute(SWAP_FUNCTION)
    for signature in SIGNATURES:
        # Pinned to this schema, pg_temp last: names resolve as they did when migrating.
        op.execute(
            "DO $$ BEGIN EXECUTE format("
            f"'ALTER FUNCTION {signature} SET search_path = %I, pg_temp', current_schema()"
            "); END $$"
        )
        # Only roles granted EXECUTE (chronicle grants) may call them.
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")


def downgrade() -> None:
    for signature in reversed(SIGNATURES):
        op.execute(f"DROP FUNCTION {signature}")
