"""The projection runner: one per database, applying the feed to every projector exactly once.

Leadership: every runner competes for a session-level advisory lock on a connection of its own;
the holder does the work, the others wait and take over when its connection dies (a killed
process releases the lock with its connection).

Exactly once: a projector's batch and its new checkpoint commit in one transaction, and the
checkpoint row is locked first, so a crash loses or repeats nothing.

A failing event stops only its projector, at that event (status `failed`, with the error and
the position), instead of being skipped; the other projectors carry on.

Process managers (the fulfilment process) run in the same loop with checkpoints of their own:
they send their commands first, then record their state and checkpoint in one short
transaction, only if no other runner moved the checkpoint meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.errors import StaleRead, UnknownPosition
from projections.projector import ProcessManager, Projector, Tables
from projections.rebuild import (
    is_rebuilding,
    rebuild_checkpoint,
    rebuild_tables,
    start_rebuild,
    swap_in,
)
from store.database import plain_url
from store.doorbell import RING_CHANNEL
from store.errors import WrongExpectedVersion
from store.event_store import HELD_BACK_RETRY, EventStore
from store.events import FeedCheckpoint, RecordedEvent

log = logging.getLogger(__name__)

LEADER_LOCK = 7_463_002

DATABASE_TROUBLE = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, DBAPIError)
"""Failures of the connection rather than of an event: the runner reconnects and retries."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectionStatus:
    name: str
    position: int
    lag: int
    status: str
    error: str | None
    failed_position: int | None
    updated_at: datetime | None


class ProjectionRunner:
    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        projectors: Sequence[Projector],
        *,
        process_managers: Sequence[ProcessManager] = (),
        batch_size: int = 500,
        poll_interval: float = 1.0,
    ) -> None:
        self.engine = engine
        self.store = store
        self.projectors = {p.name: p for p in projectors}
        self.process_managers = {m.name: m for m in process_managers}
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.is_leader = False
        self._rung = 0  # the highest position a ring announced
        self._seen = 0  # the highest position a pass read
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()

    # ------------------------------------------------------------------ running

    def wake(self, position: int | None = None) -> None:
        """There is more in the feed (a doorbell ring); the safety poll catches any lost one."""
        if position is not None:
            self._rung = max(self._rung, position)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Compete for leadership and, while leader, keep every projector caught up."""
        await self.ensure_checkpoints()
        while not stop.is_set():
            try:
                await self._lead(stop)
            except DATABASE_TROUBLE:
                log.warning(
                    "projection runner lost its database connection; retrying", exc_info=True
                )
            self.is_leader = False
            await _wait(stop, self.poll_interval)

    async def _lead(self, stop: asyncio.Event) -> None:
        connection = await asyncpg.connect(plain_url(self.engine.url.render_as_string(False)))
        try:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK):
                return
            self.is_leader = True
            log.info("this process runs the projections")
            await connection.add_listener(RING_CHANNEL, lambda *_: self.wake())
            while not stop.is_set():
                self._wake.clear()  # a ring during the pass brings the next one at once
                if await self.run_once() >= self.batch_size:
                    continue  # a full batch: more is waiting
                # A rung event not read yet is held back by a transaction still in flight (the
                # feed is gap-safe): look again shortly rather than at the next poll.
                pause = HELD_BACK_RETRY if self._rung > self._seen else self.poll_interval
                await _wait(stop, pause, self._wake)
                await connection.fetchval("SELECT 1")  # still connected, so still the leader
        finally:
            self.is_leader = False
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)

    async def run_once(self) -> int:
        """One pass: every projector and process manager gets the batch of the feed beyond its
        checkpoint, read once for all those that stand at the same place (in the steady state,
        all of them: they move in step); then a step of any rebuild. Returns the size of the
        largest batch read (a full one: more may be waiting).

        Each projector with events of its types applies them and moves its checkpoint in a
        transaction of its own; the checkpoints of those with none of their types in the batch
        move together in one statement, each only from the place it was read at. One that lags
        (new, or restarted after a failure) reads batches of its own and holds no one back.
        """
        places = await self._places()
        everyone: list[Projector | ProcessManager] = [
            *self.projectors.values(),
            *self.process_managers.values(),
        ]
        standing: dict[FeedCheckpoint, list[Projector | ProcessManager]] = {}
        for worker in everyone:
            if worker.name in places:
                standing.setdefault(places[worker.name], []).append(worker)
        read = 0
        idle: list[tuple[str, FeedCheckpoint, FeedCheckpoint]] = []
        for place, workers in standing.items():
            events = await self.store.read_feed(place, limit=self.batch_size)
            if not events:
                continue
            read = max(read, len(events))
            self._seen = max(self._seen, max(event.position for event in events))
            for worker in workers:
                if not any(event.event_type in worker.event_types for event in events):
                    idle.append((worker.name, place, events[-1].checkpoint))
                elif worker.name in self.projectors:
                    await self._catch_up_from(self.projectors[worker.name], place, events)
                else:
                    await self._advance_from(self.process_managers[worker.name], place, events)
        if idle:
            await _move_checkpoints(self.engine, idle)
        for projector in self.projectors.values():
            if rebuild_checkpoint(projector.name) in places:
                read += await self._rebuild_step(projector)
        if read:
            self._progress.set()
            self._progress = asyncio.Event()
        return read

    async def _places(self) -> dict[str, FeedCheckpoint]:
        """Where every running checkpoint stands (rebuilds' included)."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT name, transaction_id::text AS tx, position "
                    "FROM projection_checkpoints WHERE status = 'running'"
                )
            )
            return {row.name: FeedCheckpoint(int(row.tx), row.position) for row in rows}

    async def catch_up(self, projector: Projector, checkpoint_name: str, tables: Tables) -> int:
        """One batch from the checkpoint named `checkpoint_name` into `tables`."""
        try:
            async with self.engine.begin() as connection:
                checkpoint = await _lock_checkpoint(connection, checkpoint_name)
                if checkpoint is None:
                    return 0
                events = await self.store.read_feed(checkpoint, limit=self.batch_size)
                await self._apply(connection, projector, events, tables, checkpoint_name)
                return len(events)
        except Exception:
            log.warning("batch of %s failed; applying it event by event", checkpoint_name)
            return await self._isolate_failure(projector, checkpoint_name, tables)

    async def _catch_up_from(
        self, projector: Projector, place: FeedCheckpoint, events: Sequence[RecordedEvent]
    ) -> None:
        """Apply `events`, read beyond `place`, to the live tables, if the checkpoint is there."""
        tables = Tables.live(projector.tables)
        try:
            async with self.engine.begin() as connection:
                if await _lock_checkpoint(connection, projector.name) != place:
                    return  # moved meanwhile (by a runner deposed since): the next pass rereads
                await self._apply(connection, projector, events, tables, projector.name)
        except Exception:
            log.warning("batch of %s failed; applying it event by event", projector.name)
            await self._isolate_failure(projector, projector.name, tables)

    async def advance(self, manager: ProcessManager, *, limit: int | None = None) -> int:
        """One batch of the feed through `manager`: its commands, then its state and checkpoint."""
        async with self.engine.connect() as connection:
            start = await _read_checkpoint(connection, manager.name, only_running=True)
        if start is None:
            return 0
        events = await self.store.read_feed(start, limit=limit or self.batch_size)
        if not events:
            return 0
        return await self._advance_from(manager, start, events)

    async def _advance_from(
        self, manager: ProcessManager, start: FeedCheckpoint, events: Sequence[RecordedEvent]
    ) -> int:
        try:
            record = await manager.react([e for e in events if e.event_type in manager.event_types])
        except DATABASE_TROUBLE:
            raise
        except WrongExpectedVersion as contention:
            log.warning("%s: %s; the batch is tried again", manager.name, contention)
            return 0
        except Exception:
            if len(events) > 1:
                log.warning("batch of %s failed; reacting event by event", manager.name)
                advanced = 0
                for _ in events:  # until the failing event stops it
                    if not (read := await self.advance(manager, limit=1)):
                        break
                    advanced += read
                return advanced
            async with self.engine.begin() as connection:
                if await _lock_checkpoint(connection, manager.name) == start:
                    await _stop_at(connection, manager.name, events[0])
            return 0
        async with self.engine.begin() as connection:
            if await _lock_checkpoint(connection, manager.name) != start:
                return 0  # another runner moved it: what we sent had the ids it sent
            await record(connection)
            await _save_checkpoint(connection, manager.name, events[-1].checkpoint)
        return len(events)

    async def _apply(
        self,
        connection: AsyncConnection,
        projector: Projector,
        events: Sequence[RecordedEvent],
        tables: Tables,
        checkpoint_name: str,
    ) -> None:
        relevant = [event for event in events if event.event_type in projector.event_types]
        if relevant:
            await projector.apply(connection, relevant, tables)
        if events:
            await _save_checkpoint(connection, checkpoint_name, events[-1].checkpoint)

    async def _isolate_failure(
        self, projector: Projector, checkpoint_name: str, tables: Tables
    ) -> int:
        applied = 0
        while True:
            async with self.engine.begin() as connection:
                checkpoint = await _lock_checkpoint(connection, checkpoint_name)
                if checkpoint is None:
                    return applied
                events = await self.store.read_feed(checkpoint, limit=1)
                if not events:
                    return applied
                try:
                    async with connection.begin_nested():
                        await self._apply(connection, projector, events, tables, checkpoint_name)
                except Exception:
                    await _stop_at(connection, checkpoint_name, events[0])
                    return applied
            applied += 1

    # ------------------------------------------------------------------ rebuilding

    def projector(self, name: str) -> Projector:
        """The projector called `name`; KeyError if there is none."""
        return self.projectors[name]

    async def rebuild(self, name: str) -> bool:
        """Start rebuilding `name` from the first event; False if one is already under way."""
        started = await start_rebuild(self.engine, self.projector(name))
        if started:
            log.info("rebuilding projection %s from the first event", name)
        self.wake()
        return started

    async def _rebuild_step(self, projector: Projector) -> int:
        read = await self.catch_up(
            projector, rebuild_checkpoint(projector.name), rebuild_tables(projector)
        )
        if read < self.batch_size:
            read += await self._finish_rebuild(projector)
        return read

    async def _finish_rebuild(self, projector: Projector) -> int:
        """Apply the last events to the copies and swap them in, in one transaction."""
        name = rebuild_checkpoint(projector.name)
        read = 0
        async with self.engine.begin() as connection:
            await _lock_checkpoint(connection, projector.name, only_running=False)
            checkpoint = await _lock_checkpoint(connection, name)
            if checkpoint is None:
                return 0
            while events := await self.store.read_feed(checkpoint, limit=self.batch_size):
                await self._apply(connection, projector, events, rebuild_tables(projector), name)
                checkpoint = events[-1].checkpoint
                read += len(events)
            await swap_in(connection, projector)
        log.info("projection %s rebuilt and swapped in", projector.name)
        return read + 1

    async def drive_rebuild(self, name: str, on_progress: Callable[[int, int], None]) -> None:
        """Rebuild `name` in this process until it is swapped in, reporting (position, head)."""
        projector = self.projector(name)
        await self.rebuild(name)
        while True:
            async with self.engine.connect() as connection:
                if not await is_rebuilding(connection, name):
                    return
                position = await _read_checkpoint(connection, rebuild_checkpoint(name))
                head = (await connection.execute(text("SELECT max(position) FROM events"))).scalar()
            on_progress(position.position if position else 0, head or 0)
            if not await self._rebuild_step(projector):
                failed = [
                    s
                    for s in await self.statuses(include_rebuilds=True)
                    if s.name == rebuild_checkpoint(name) and s.status == "failed"
                ]
                if failed:
                    raise RuntimeError(f"rebuild of {name} failed: {failed[0].error}")

    async def ensure_checkpoints(self) -> None:
        async with self.engine.begin() as connection:
            for name in (*self.projectors, *self.process_managers):
                await connection.execute(
                    text(
                        "INSERT INTO projection_checkpoints (name) VALUES (:name) "
                        "ON CONFLICT (name) DO NOTHING"
                    ),
                    {"name": name},
                )

    async def restart(self, name: str) -> None:
        """Let a failed projector try again from where it stopped (after a fix)."""
        async with self.engine.begin() as connection:
            await connection.execute(
                text(
                    "UPDATE projection_checkpoints SET status = 'running', error = NULL, "
                    "failed_position = NULL, updated_at = now() WHERE name = :name"
                ),
                {"name": name},
            )
        self.wake()

    # ------------------------------------------------------------------ reading your writes

    async def wait_for(self, name: str, position: int, within: float) -> None:
        """Return once projection `name` has applied the event at `position`.

        Raises `UnknownPosition` if no event has it and `StaleRead` after `within` seconds.
        """
        if position == 0:
            return
        target = await self.store.checkpoint_at(position)
        if target is None:
            raise UnknownPosition(position)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            async with self.engine.connect() as connection:
                reached = await _read_checkpoint(connection, name)
            if reached is not None and reached >= target:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise StaleRead(f"projection {name} has not reached position {position}")
            # Progress in this process wakes us at once; another process's runner is polled.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(remaining, 0.05))

    async def statuses(self, *, include_rebuilds: bool = False) -> list[ProjectionStatus]:
        """Each projection's place, lag and status (`rebuilding` while a rebuild runs)."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT c.name, c.position, c.error, c.failed_position, c.updated_at, "
                    "CASE WHEN c.status = 'running' AND EXISTS (SELECT 1 FROM "
                    "projection_checkpoints r WHERE r.name = c.name || '\\:rebuild') "
                    "THEN 'rebuilding' ELSE c.status END AS status, "
                    "(SELECT count(*) FROM events e "
                    "WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)) AS lag "
                    "FROM projection_checkpoints c "
                    "WHERE :all OR c.name NOT LIKE '%\\:rebuild' ORDER BY c.name"
                ),
                {"all": include_rebuilds},
            )
            return [
                ProjectionStatus(
                    name=row.name,
                    position=row.position,
                    lag=row.lag,
                    status=row.status,
                    error=row.error,
                    failed_position=row.failed_position,
                    updated_at=row.updated_at,
                )
                for row in rows
            ]


async def _lock_checkpoint(
    connection: AsyncConnection, name: str, *, only_running: bool = True
) -> FeedCheckpoint | None:
    """The checkpoint `name`, locked for this transaction; None if missing or not running."""
    row = (
        await connection.execute(
            text(
                "SELECT transaction_id::text AS tx, position, status "
                "FROM projection_checkpoints WHERE name = :name FOR UPDATE"
            ),
            {"name": name},
        )
    ).first()
    if row is None or (only_running and row.status != "running"):
        return None
    return FeedCheckpoint(int(row.tx), row.position)


async def _stop_at(connection: AsyncConnection, name: str, event: RecordedEvent) -> None:
    """Mark `name` failed at `event`, with the exception being handled, and log its trace."""
    error = sys.exc_info()[1]
    log.exception(
        "projection %s stopped at position %s (%s of %s)",
        name,
        event.position,
        event.event_type,
        event.stream_id,
    )
    await connection.execute(
        text(
            "UPDATE projection_checkpoints SET status = 'failed', error = :error, "
            "failed_position = :position, updated_at = now() WHERE name = :name"
        ),
        {"error": _failure_reason(error, event), "position": event.position, "name": name},
    )


REASON_LENGTH = 80


def _failure_reason(error: BaseException | None, event: RecordedEvent) -> str:
    """What any client of `projections { error }` may read: the exception's kind and the
    event. A database error's text holds the statement and its parameters, which only the
    server log keeps; any other's first line is cut short."""
    if isinstance(error, StatementError):
        # the driver's own exception (asyncpg's) names the failure best
        orig = error.orig
        cause = orig if orig is None or orig.__cause__ is None else orig.__cause__
        kind = type(error).__name__ + ("" if cause is None else f" ({type(cause).__name__})")
    else:
        line = str(error).partition("\n")[0]
        if len(line) > REASON_LENGTH:
            line = line[:REASON_LENGTH] + "…"
        kind = f"{type(error).__name__}: {line}" if line else type(error).__name__
    return f"{kind} at position {event.position} ({event.event_type}): see the server log"


async def _read_checkpoint(
    connection: AsyncConnection, name: str, *, only_running: bool = False
) -> FeedCheckpoint | None:
    row = (
        await connection.execute(
            text(
                "SELECT transaction_id::text AS tx, position, status FROM projection_checkpoints "
                "WHERE name = :name"
            ),
            {"name": name},
        )
    ).first()
    if row is None or (only_running and row.status != "running"):
        return None
    return FeedCheckpoint(int(row.tx), row.position)


async def _move_checkpoints(
    engine: AsyncEngine, moves: Sequence[tuple[str, FeedCheckpoint, FeedCheckpoint]]
) -> None:
    """Move each (name, from, to) checkpoint that is still running at `from` to `to`."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE projection_checkpoints SET transaction_id = CAST(:tx AS text)::xid8, "
                "position = :position, updated_at = now() WHERE name = :name "
                "AND status = 'running' AND transaction_id = CAST(:old_tx AS text)::xid8 "
                "AND position = :old_position"
            ),
            [
                {
                    "name": name,
                    "old_tx": str(start.transaction_id),
                    "old_position": start.position,
                    "tx": str(end.transaction_id),
                    "position": end.position,
                }
                for name, start, end in moves
            ],
        )


async def _save_checkpoint(
    connection: AsyncConnection, name: str, checkpoint: FeedCheckpoint
) -> None:
    await connection.execute(
        text(
            "UPDATE projection_checkpoints SET transaction_id = CAST(:tx AS text)::xid8, "
            "position = :position, updated_at = now() WHERE name = :name"
        ),
        {"tx": str(checkpoint.transaction_id), "position": checkpoint.position, "name": name},
    )


async def _wait(stop: asyncio.Event, seconds: float, *others: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in (stop, *others)]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


__all__: list[Any] = ["ProjectionRunner", "ProjectionStatus", "StaleRead", "UnknownPosition"]
