"""Waiting for the gap-safe feed to let through what a test wrote.

The feed delivers only events of transactions older than every transaction still open in the
whole PostgreSQL cluster: a transaction of another database on the test server (another test's
server, a benchmark) can hold a test's own events back for a moment. A test that reads "until
nothing more comes" must first wait until everything committed is visible.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from store.event_store import EventStore


async def all_visible(store: EventStore) -> bool:
    """Whether every committed event is older than every transaction still open."""
    async with store.engine.connect() as connection:
        visible = await connection.execute(
            text(
                "SELECT coalesce(max(transaction_id) < pg_snapshot_xmin(pg_current_snapshot()), "
                "true) FROM events"
            )
        )
        return bool(visible.scalar())


async def until_all_visible(store: EventStore, within: float = 20) -> None:
    async with asyncio.timeout(within):
        while not await all_visible(store):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
