"""Rebuilding a read model from the first event, while the live one keeps answering.

A rebuild creates fresh copies of the projector's tables (`<table>__rebuild`, same columns and
indexes) and a checkpoint `<name>:rebuild` at the start of the feed; the runner feeds both the
live tables and the copies. Once the copies have caught up, one transaction applies the last
events, renames the copies into place, drops the old tables and moves the live checkpoint on:
queries see the old tables until that commit and the new ones after it, never a partial table.

The copies are made and swapped in by the database functions `create_rebuild_copy` and
`swap_in_rebuild_copy` (migration 0009), which run with the schema owner's rights: the service
may run as a role that cannot create, rename or drop tables, only hold TRUNCATE and INSERT on
the read models it rebuilds (see store/grants.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections import parking
from projections.checkpoints import lock_checkpoint, read_checkpoint, statuses
from projections.projector import Projector, Tables, rebuild_table
from projections.workers import (
    STOP,
    OnFailure,
    ProjectorWorker,
    apply_batch,
    catch_up,
)
from store.event_store import EventStore

log = logging.getLogger(__name__)

_HEAD = text("SELECT max(position) FROM events")
# (Re)creates `<table>__rebuild` with the live table's grants; returns its name.
_CREATE_COPY = text("SELECT create_rebuild_copy(:table)")
# Renames the copy into place and drops the old table, in the caller's transaction.
_SWAP_IN_COPY = text("SELECT swap_in_rebuild_copy(:table)")


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
        await parking.clear(connection, rebuild_checkpoint(projector.name))
        for table in projector.tables:
            fresh = (await connection.execute(_CREATE_COPY, {"table": table})).scalar_one()
            assert fresh == rebuild_table(table), (fresh, table)
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
        await connection.execute(_SWAP_IN_COPY, {"table": table})
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
    await parking.hand_over(connection, rebuild_checkpoint(projector.name), projector.name)


def rebuild_tables(projector: Projector) -> Tables:
    return Tables.rebuilding(projector.tables)


class Rebuilder:
    """Drives rebuilds: a step each runner pass, or to the end in one process (the CLI)."""

    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        *,
        batch_size: int,
        on_failure: OnFailure = STOP,
    ) -> None:
        self.engine = engine
        self.store = store
        self.batch_size = batch_size
        self.on_failure = on_failure

    async def start(self, projector: Projector) -> bool:
        """Start rebuilding `projector` from the first event; False if one is under way."""
        started = await start_rebuild(self.engine, projector)
        if started:
            log.info("rebuilding projection %s from the first event", projector.name)
        return started

    async def step(self, projector: Projector) -> int:
        """A batch into the copies; once they are nearly caught up, the swap. Returns the
        number of events read (plus one for the swap)."""
        worker = ProjectorWorker(
            self.engine, projector, rebuild_checkpoint(projector.name), rebuild_tables(projector)
        )
        read = await catch_up(
            self.engine, self.store, worker, limit=self.batch_size, on_failure=self.on_failure
        )
        if read < self.batch_size:
            read += await self._finish(projector)
        return read

    async def _finish(self, projector: Projector) -> int:
        """Apply the last events to the copies and swap them in, in one transaction."""
        name = rebuild_checkpoint(projector.name)
        read = 0
        async with self.engine.begin() as connection:
            await lock_checkpoint(connection, projector.name, only_running=False)
            checkpoint = await lock_checkpoint(connection, name)
            if checkpoint is None:
                return 0
            while events := await self.store.read_feed(checkpoint, limit=self.batch_size):
                try:
                    async with connection.begin_nested():
                        await apply_batch(
                            connection, projector, events, rebuild_tables(projector), name
                        )
                except Exception:
                    # An event it fails on came in meanwhile: the next step's batch, taken
                    # event by event, retries and parks it or stops there.
                    log.warning("finishing the rebuild of %s failed", name, exc_info=True)
                    return 0  # what the savepoint held is undone; nothing else was written
                checkpoint = events[-1].checkpoint
                read += len(events)
            await swap_in(connection, projector)
        log.info("projection %s rebuilt and swapped in", projector.name)
        return read + 1

    async def drive(self, projector: Projector, on_progress: Callable[[int, int], None]) -> None:
        """Step the rebuild of `projector` (already started) until it is swapped in, reporting
        (position, head) before each step; raise if it fails."""
        name = projector.name
        while True:
            async with self.engine.connect() as connection:
                if not await is_rebuilding(connection, name):
                    return
                position = await read_checkpoint(connection, rebuild_checkpoint(name))
                head = (await connection.execute(_HEAD)).scalar()
            on_progress(position.position if position else 0, head or 0)
            if not await self.step(projector):
                failed = [
                    s
                    for s in await statuses(self.engine, include_rebuilds=True)
                    if s.name == rebuild_checkpoint(name) and s.status == "failed"
                ]
                if failed:
                    raise RuntimeError(f"rebuild of {name} failed: {failed[0].error}")
