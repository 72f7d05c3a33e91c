"""Rebuilding a read model from the first event, while the live one keeps answering.

A rebuild creates fresh copies of the projector's tables (`<table>__rebuild`, same columns and
indexes) and a checkpoint `<name>:rebuild` at the start of the feed; the runner feeds both the
live tables and the copies. Once the copies have caught up, one transaction applies the last
events, renames the copies into place, drops the old tables and moves the live checkpoint on:
queries see the old tables until that commit and the new ones after it, never a partial table.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.projector import Projector, Tables, rebuild_table


def rebuild_checkpoint(name: str) -> str:
    return f"{name}:rebuild"


async def start_rebuild(engine: AsyncEngine, projector: Projector) -> bool:
    """Prepare fresh tables and a checkpoint at the start; False if a rebuild is under way."""
    async with engine.begin() as connection:
        created = (
            await connection.execute(
                text(
                    "INSERT INTO projection_checkpoints (name) VALUES (:name) "
                    "ON CONFLICT (name) DO NOTHING RETURNING name"
                ),
                {"name": rebuild_checkpoint(projector.name)},
            )
        ).first()
        if created is None:
            return False
        for table in projector.tables:
            fresh = rebuild_table(table)
            await connection.execute(text(f"DROP TABLE IF EXISTS {fresh}"))
            await connection.execute(text(f"CREATE TABLE {fresh} (LIKE {table} INCLUDING ALL)"))
        return True


async def is_rebuilding(connection: AsyncConnection, name: str) -> bool:
    row = (
        await connection.execute(
            text("SELECT 1 FROM projection_checkpoints WHERE name = :name"),
            {"name": rebuild_checkpoint(name)},
        )
    ).first()
    return row is not None


async def swap_in(connection: AsyncConnection, projector: Projector) -> None:
    """Put the caught-up copies in place of the live tables (inside the caller's transaction,
    which holds both checkpoints locked and has applied every event up to the rebuild's)."""
    for table in projector.tables:
        fresh = rebuild_table(table)
        await connection.execute(text(f"ALTER TABLE {table} RENAME TO {table}__old"))
        await connection.execute(text(f"ALTER TABLE {fresh} RENAME TO {table}"))
        await connection.execute(text(f"DROP TABLE {table}__old"))
    await connection.execute(
        text(
            "UPDATE projection_checkpoints AS live SET transaction_id = r.transaction_id, "
            "position = r.position, status = 'running', error = NULL, failed_position = NULL, "
            "updated_at = now() FROM projection_checkpoints AS r "
            "WHERE live.name = :name AND r.name = :rebuild"
        ),
        {"name": projector.name, "rebuild": rebuild_checkpoint(projector.name)},
    )
    await connection.execute(
        text("DELETE FROM projection_checkpoints WHERE name = :rebuild"),
        {"rebuild": rebuild_checkpoint(projector.name)},
    )


def rebuild_tables(projector: Projector) -> Tables:
    return Tables.rebuilding(projector.tables)
