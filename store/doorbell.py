"""The doorbell: tells listeners, after a commit, that the log has grown.

A ring carries only "there is something at or before position N"; readers always read the
store from their own checkpoint, so a lost ring costs latency, never an event. Rings are
coalesced: at most one NOTIFY is in flight per process, at most one every `interval`
seconds, and it carries the newest position, so a burst of appends costs a few NOTIFYs
rather than one each, for at most `interval` of added latency.

Rings are sent after commit, on their own short transaction, rather than inside the append:
a NOTIFY in a writing transaction takes a cluster-wide lock held through the commit's WAL
flush, which would serialise every writer of the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

RING_CHANNEL = "chronicle_events"

log = logging.getLogger(__name__)


Notify = Callable[[str], Awaitable[None]]
"""Sends one ring (the position, as text) to the other processes."""


def pg_notifier(engine: AsyncEngine, channel: str = RING_CHANNEL) -> Notify:
    """Rings with `pg_notify` on the service's own database."""

    async def notify(payload: str) -> None:
        async with engine.connect() as connection:
            # One statement in autocommit: a single round trip.
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            await driver.execute("SELECT pg_notify($1, $2)", channel, payload)

    return notify


class Doorbell:
    def __init__(self, notify: Notify | None, interval: float = 0.005) -> None:
        """With no `notify`, rings reach only this process's local listeners."""
        self.notify = notify
        self.interval = interval
        self._latest = 0
        self._rung = 0
        self._task: asyncio.Task[None] | None = None
        self._local: list[Callable[[int], None]] = []

    def listen_locally(self, listener: Callable[[int], None]) -> None:
        """Call `listener(position)` in this process after each commit."""
        self._local.append(listener)

    def ring(self, position: int) -> None:
        """Announce a commit up to `position`; returns at once."""
        for listener in self._local:
            listener(position)
        if self.notify is None:
            return
        self._latest = max(self._latest, position)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        assert self.notify is not None
        while self._rung < self._latest:
            target = self._latest
            try:
                await self.notify(str(target))
            except Exception:
                # Listeners fall back on their safety poll; the events are safe in the store.
                log.warning("could not ring the doorbell up to %s", target, exc_info=True)
                return
            self._rung = target
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
