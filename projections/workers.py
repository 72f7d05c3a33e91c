"""Taking a batch of the feed: a projector's or a process manager's, exactly once, and the one
way a failing event is isolated.

A worker takes a batch read beyond its checkpoint's `place`: it applies it (a projector) or
reacts to it (a process manager) and moves its checkpoint past it, only if the checkpoint is
still at `place`. A projector's batch and its checkpoint commit in one transaction. A process
manager sends its commands first and then records its state and checkpoint in one short
transaction: if another runner moved the checkpoint meanwhile, the commands it sent had the
ids that runner sent, and nothing is recorded twice.

Failure isolation, the same for both: when a batch fails, its events are taken again one at a
time, each from where the last one left the checkpoint. One that fails is tried again
`OnFailure.retries` times, after a backoff that doubles each time (no transaction is held while
waiting); if it still fails, it stops its worker, at that event (status `failed`, with the
reason and the position), and the others carry on. With `OnFailure.park`, a projector parks
it instead and goes on with the next event (projections/parking.py; a process manager, whose
commands must follow each other, always stops). The failure the worker lets through (`passes`:
a lost database connection, for a process manager whose commands cross the store) is raised
instead, for the runner to retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections import parking
from projections.checkpoints import (
    failure_reason,
    lock_checkpoint,
    read_checkpoint,
    save_checkpoint,
    stop_at,
)
from projections.projector import (
    ProcessManager,
    Projector,
    Tables,
    apply_events,
    open_envelopes,
)
from store.errors import WrongExpectedVersion
from store.event_store import EventStore
from store.events import FeedCheckpoint, RecordedEvent

log = logging.getLogger(__name__)

DATABASE_TROUBLE = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, DBAPIError)
"""Failures of the connection rather than of an event: the runner reconnects and retries."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OnFailure:
    """What a worker does with an event it fails on (`CHRONICLE_PROJECTION_RETRIES`,
    `CHRONICLE_ON_PROJECTION_ERROR`): try it `retries` more times, waiting `backoff` seconds
    before the first and twice as long before each next, then stop there, or park it."""

    retries: int = 3
    backoff: float = 0.1
    park: bool = False

    @property
    def attempts(self) -> int:
        return self.retries + 1


STOP = OnFailure()
"""The default: a few retries, then the worker stops at the event, as it always has."""


class Worker(Protocol):
    """Something the runner hands batches of the feed to, under a checkpoint of its own."""

    checkpoint_name: str
    event_types: frozenset[str]
    passes: tuple[type[BaseException], ...]
    """Exceptions that are not the event's fault: raised, never a reason to stop."""
    parks: bool
    """Whether it may park an event it fails on and go on (projectors may)."""

    async def take(self, place: FeedCheckpoint, events: Sequence[RecordedEvent]) -> bool:
        """Take `events`, read beyond `place`, and move the checkpoint past them; False (and
        nothing done) if the checkpoint is no longer at `place` or the batch must wait."""
        ...

    async def park(
        self, place: FeedCheckpoint, event: RecordedEvent, error: Exception, attempts: int
    ) -> bool:
        """Park `event` (the one after `place`) and move the checkpoint past it; False (and
        nothing done) if the checkpoint is no longer at `place`."""
        ...


async def take_batch(
    engine: AsyncEngine,
    worker: Worker,
    place: FeedCheckpoint,
    events: Sequence[RecordedEvent],
    on_failure: OnFailure = STOP,
) -> int:
    """Have `worker` take `events`; on a failure, one at a time, each failing one tried again
    and then parked (with `on_failure.park`, by a worker that parks) or stopped at. Returns
    how many events it took (parked ones included)."""
    failed: Exception | None = None
    try:
        return len(events) if await worker.take(place, events) else 0
    except worker.passes:
        raise
    except Exception as error:
        if len(events) == 1:
            failed = error  # its first attempt
        else:
            log.warning("batch of %s failed; taking it event by event", worker.checkpoint_name)
    taken = 0
    for event in events:
        outcome = await _attempt(worker, place, event, on_failure, failed)
        failed = None
        if outcome is False:
            break
        if isinstance(outcome, Exception):
            if not (on_failure.park and worker.parks):
                await stop_at(engine, worker.checkpoint_name, place, event, outcome)
                break
            if not await worker.park(place, event, outcome, on_failure.attempts):
                break
        place = event.checkpoint
        taken += 1
    return taken


async def _attempt(
    worker: Worker,
    place: FeedCheckpoint,
    event: RecordedEvent,
    on_failure: OnFailure,
    failed: Exception | None,
) -> bool | Exception:
    """Take `event` alone, trying again after each failure (`failed`: a first one already
    made); its outcome (False: the checkpoint moved), or the last failure."""
    tries = 0 if failed is None else 1
    while True:
        if failed is not None:
            if tries >= on_failure.attempts:
                return failed
            delay = on_failure.backoff * 2 ** (tries - 1)
            log.warning(
                "%s failed on position %s (attempt %s of %s); trying again in %.2fs",
                worker.checkpoint_name,
                event.position,
                tries,
                on_failure.attempts,
                delay,
            )
            await asyncio.sleep(delay)
        try:
            return await worker.take(place, [event])
        except worker.passes:
            raise
        except Exception as error:
            failed = error
            tries += 1


async def catch_up(
    engine: AsyncEngine,
    store: EventStore,
    worker: Worker,
    *,
    limit: int,
    on_failure: OnFailure = STOP,
) -> int:
    """One batch of the feed beyond `worker`'s checkpoint, if it is running; returns how many
    events it took."""
    async with engine.connect() as connection:
        place = await read_checkpoint(connection, worker.checkpoint_name, only_running=True)
    if place is None:
        return 0
    events = await store.read_feed(place, limit=limit)
    if not events:
        return 0
    return await take_batch(engine, worker, place, events, on_failure)


class ProjectorWorker:
    """A projector writing into `tables` (its own, or a rebuild's copies) under the checkpoint
    `checkpoint_name`. Every error of its batch is the batch's: a failing statement stops it."""

    passes: tuple[type[BaseException], ...] = ()
    parks = True

    def __init__(
        self, engine: AsyncEngine, projector: Projector, checkpoint_name: str, tables: Tables
    ) -> None:
        self.engine = engine
        self.projector = projector
        self.event_types = projector.event_types
        self.checkpoint_name = checkpoint_name
        self.tables = tables

    async def take(self, place: FeedCheckpoint, events: Sequence[RecordedEvent]) -> bool:
        async with self.engine.begin() as connection:
            if await lock_checkpoint(connection, self.checkpoint_name) != place:
                return False  # moved meanwhile (by a runner deposed since): the next pass rereads
            await apply_batch(connection, self.projector, events, self.tables, self.checkpoint_name)
        return True

    async def park(
        self, place: FeedCheckpoint, event: RecordedEvent, error: Exception, attempts: int
    ) -> bool:
        async with self.engine.begin() as connection:
            if await lock_checkpoint(connection, self.checkpoint_name) != place:
                return False
            log.error(
                "projection %s parked position %s (%s of %s) after %s attempts",
                self.checkpoint_name,
                event.position,
                event.event_type,
                event.stream_id,
                attempts,
                exc_info=error,
            )
            reason = failure_reason(error, event)
            await parking.park(
                connection, self.checkpoint_name, [event], error=reason, attempts=attempts
            )
            await save_checkpoint(connection, self.checkpoint_name, event.checkpoint)
        return True


async def apply_batch(
    connection: AsyncConnection,
    projector: Projector,
    events: Sequence[RecordedEvent],
    tables: Tables,
    checkpoint_name: str,
) -> None:
    """Apply `events` (those of the projector's types) to `tables` and move the checkpoint
    past them, in the caller's transaction, which holds the checkpoint locked. Those of a
    stream with an event parked are parked behind it instead (projections/parking.py)."""
    relevant = [e for e in events if e.event_type in projector.event_types]
    applied = await parking.hold_back(connection, checkpoint_name, relevant)
    await apply_events(connection, projector, applied, tables)
    if events:
        await save_checkpoint(connection, checkpoint_name, events[-1].checkpoint)


class ProcessWorker:
    """A process manager: its commands first, then its state and checkpoint."""

    passes: tuple[type[BaseException], ...] = DATABASE_TROUBLE
    parks = False

    def __init__(self, engine: AsyncEngine, manager: ProcessManager) -> None:
        self.engine = engine
        self.manager = manager
        self.event_types = manager.event_types
        self.checkpoint_name = manager.name

    async def take(self, place: FeedCheckpoint, events: Sequence[RecordedEvent]) -> bool:
        relevant = [e for e in events if e.event_type in self.event_types]
        try:
            record = await self.manager.react(open_envelopes(self.manager.handles, relevant))
        except WrongExpectedVersion as contention:
            log.warning("%s: %s; the batch is tried again", self.manager.name, contention)
            return False
        async with self.engine.begin() as connection:
            if await lock_checkpoint(connection, self.manager.name) != place:
                return False  # another runner moved it: what we sent had the ids it sent
            await record(connection)
            await save_checkpoint(connection, self.manager.name, events[-1].checkpoint)
        return True

    async def park(
        self, place: FeedCheckpoint, event: RecordedEvent, error: Exception, attempts: int
    ) -> bool:
        raise NotImplementedError("a process manager stops at an event it fails on")
