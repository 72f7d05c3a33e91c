"""What the serving role may do in the database: the statements `chronicle grants` prints.

The schema owner runs the migrations and owns every table; the service runs as a role of its
own that holds only the privileges below, so PostgreSQL itself refuses anything else. Above all,
`events` can be read and appended to, never updated, deleted or truncated (migration 0001's
trigger refuses that too, for every role; the grants make the refusal PostgreSQL's privilege
check, before any trigger runs), and the role can create, alter or drop no table.

Why each privilege:

- `events`, `commands`: appends insert them (`append_to_streams` runs with the caller's rights);
  loads, the feed and idempotency read them. `events.position` is an identity column, whose
  sequence needs no grant of its own.
- `streams`, `snapshots`: appends move a stream's version; a newer snapshot replaces an older
  one (upserts). Neither is ever deleted.
- `projection_checkpoints`: the runner creates and moves checkpoints; a finished rebuild
  deletes its own.
- `fulfilment_state`: the fulfilment process upserts one row per order.
- `parked_events`: a projector parks the events it cannot apply; retrying one deletes it, or
  updates its error and attempts when it fails again; skipping deletes it.
- read-model tables: projectors insert, update and delete rows. A rebuild fills a copy of each
  and swaps it in through migration 0009's functions, which run as the owner and check that the
  caller holds TRUNCATE and INSERT on the table (replacing all rows is what TRUNCATE does): so
  read models get TRUNCATE too, and the role gets EXECUTE on those two functions. The copy
  takes the live table's grants, so no `ALTER DEFAULT PRIVILEGES` is needed.

The statements begin by revoking every table privilege the role holds on these tables, and run
in one transaction when applied: the role ends with exactly these privileges, however often
they are applied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from sqlalchemy import text
from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS
from sqlalchemy.ext.asyncio import AsyncEngine

EVENT_STORE: Mapping[str, tuple[str, ...]] = {
    "events": ("SELECT", "INSERT"),
    "streams": ("SELECT", "INSERT", "UPDATE"),
    "commands": ("SELECT", "INSERT"),
    "snapshots": ("SELECT", "INSERT", "UPDATE"),
}
"""The event store's tables and what the serving role does with them."""

RUNNER: Mapping[str, tuple[str, ...]] = {
    "projection_checkpoints": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "fulfilment_state": ("SELECT", "INSERT", "UPDATE"),
    "parked_events": ("SELECT", "INSERT", "UPDATE", "DELETE"),
}
"""The projection runner's own tables (not read models: never rebuilt)."""

READ_MODEL: tuple[str, ...] = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
"""What the serving role does with each read-model table, rebuilds included."""

REBUILD_FUNCTIONS: tuple[str, ...] = ("create_rebuild_copy(text)", "swap_in_rebuild_copy(text)")

_BARE = re.compile(r"[a-z_][a-z0-9_$]*")


def quote(identifier: str) -> str:
    """`identifier` as SQL names it: bare if it can be, else double-quoted."""
    if _BARE.fullmatch(identifier) and identifier not in RESERVED_WORDS:
        return identifier
    return '"' + identifier.replace('"', '""') + '"'


def table_privileges(read_models: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Every table the migrations create (but alembic_version) and what the role may do."""
    privileges = {**EVENT_STORE, **RUNNER}
    for table in read_models:
        if table in privileges:
            raise ValueError(f"{table} is no read model: it belongs to the store or the runner")
        privileges[table] = READ_MODEL
    return privileges


def grant_statements(role: str, read_models: Iterable[str], schema: str = "public") -> list[str]:
    """The statements that give `role` exactly what serving needs, and nothing else."""
    grantee = quote(role)
    privileges = table_privileges(read_models)
    tables = ", ".join(quote(table) for table in privileges)
    return [
        f"GRANT USAGE ON SCHEMA {quote(schema)} TO {grantee};",
        f"REVOKE ALL ON TABLE {tables} FROM {grantee};",
        *(
            f"GRANT {', '.join(granted)} ON TABLE {quote(table)} TO {grantee};"
            for table, granted in privileges.items()
        ),
        f"GRANT EXECUTE ON FUNCTION {', '.join(REBUILD_FUNCTIONS)} TO {grantee};",
    ]


class GrantRefused(Exception):
    """The role cannot be made a least-privilege serving role (it is missing, or it already
    has the owner's powers)."""


_ROLE = text(
    "SELECT r.rolsuper, "
    "pg_has_role(r.oid, c.relowner, 'USAGE') AS owns_events "
    "FROM pg_roles AS r CROSS JOIN pg_class AS c "
    "WHERE r.rolname = :role AND c.oid = to_regclass('events')"
)


async def apply_grants(engine: AsyncEngine, role: str, read_models: Iterable[str]) -> list[str]:
    """Run `grant_statements` in one transaction as the engine's role (the schema owner);
    return them. Refused if `role` does not exist, is a superuser or acts as the owner."""
    statements = grant_statements(role, read_models)
    async with engine.begin() as connection:
        found = (await connection.execute(_ROLE, {"role": role})).first()
        if found is None:
            raise GrantRefused(
                f"no role {role!r} (or no events table: run `chronicle migrate` first); "
                f"create it first: CREATE ROLE {quote(role)} LOGIN PASSWORD '...'"
            )
        if found.rolsuper or found.owns_events:
            raise GrantRefused(
                f"role {role!r} is a superuser or owns the tables: grants cannot limit it; "
                "serve as a role of its own"
            )
        for statement in statements:
            await connection.execute(text(statement))
    return statements
