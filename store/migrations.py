"""Run the Alembic migrations (the only source of DDL) on an engine."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from alembic import command

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


def alembic_config(connection: Connection | None = None) -> Config:
    if not (ALEMBIC_DIR / "env.py").exists():
        raise RuntimeError(
            f"migrations not found at {ALEMBIC_DIR}: install Chronicle from its source tree "
            "with `pip install -e .`"
        )
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.attributes["connection"] = connection
    return config


class MigrationRefused(RuntimeError):
    """The database refused the migrations to the engine's role: not the schema owner."""


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe to run from several processes at once."""
    try:
        async with engine.begin() as connection:
            await connection.run_sync(lambda c: command.upgrade(alembic_config(c), revision))
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) != "42501":  # insufficient_privilege
            raise
        raise MigrationRefused(
            f"the role of DATABASE_URL may not migrate ({error.orig}): run `chronicle migrate` "
            "as the schema owner, and serve with CHRONICLE_MIGRATE_ON_START=false "
            "(see `chronicle grants`)"
        ) from error


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(lambda c: command.downgrade(alembic_config(c), revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda c: MigrationContext.configure(c).get_current_revision()
        )


@functools.cache
def head_revision() -> str | None:
    """The latest revision of the migrations shipped with this code."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
