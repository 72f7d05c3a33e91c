"""Electing the one runner of a database.

Every runner competes for a session-level advisory lock on a connection of its own; the holder
does the work, the others try again after a poll and take over when its connection dies (a
killed process releases the lock with its connection). The leader listens for the doorbell on
that same connection, and checks it between passes: still connected, so still the leader.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import asyncpg

from store.doorbell import RING_CHANNEL

LEADER_LOCK = 7_463_002


class Leadership:
    """The held lock, on its connection."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def confirm(self) -> None:
        """Raise if the connection (and with it the lock) is lost."""
        await self.connection.fetchval("SELECT 1")


@contextlib.asynccontextmanager
async def elected(url: str, on_ring: Callable[[], None]) -> AsyncIterator[Leadership | None]:
    """Leadership for the block if the lock is free (rings call `on_ring`), else None."""
    connection = await asyncpg.connect(url)
    try:
        if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK):
            yield None
            return
        await connection.add_listener(RING_CHANNEL, lambda *_: on_ring())
        yield Leadership(connection)
    finally:
        with contextlib.suppress(Exception):
            await connection.close(timeout=2)
