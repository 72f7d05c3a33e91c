"""Alembic environment: runs on a connection handed over by `store.migrations`, or on a URL.

`chronicle migrate` and `chronicle serve` pass an open connection in
`config.attributes["connection"]`; the plain alembic CLI needs `-x url=postgresql://...`.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import context

# Several API processes may start together: one migrates, the others wait and find it done.
MIGRATION_LOCK = 7_463_001


def run_on(connection: Connection) -> None:
    context.configure(connection=connection, transaction_per_migration=False)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


async def run_on_url(url: str) -> None:
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(run_on)
        await connection.commit()
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_on(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("give the database: alembic -x url=postgresql://... upgrade head")
    asyncio.run(run_on_url(url))
