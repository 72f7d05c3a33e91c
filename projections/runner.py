"""The projection runner: one per database, applying the feed to every projector exactly once.

It schedules; the rest is in modules of their own: `election.py` (which runner leads),
`follower.py` (when to read the feed again), `workers.py` (taking a batch exactly once, and the
one way a failing event is isolated: it stops only its worker, at that event), `rebuild.py`
(replaying into fresh tables and swapping them in), `checkpoints.py` (their SQL).

Process managers (the fulfilment process) run in the same loop with checkpoints of their own:
they send their commands first, then record their state and checkpoint in one short
transaction, only if no other runner moved the checkpoint meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from projections import checkpoints, parking
from projections.checkpoints import ProjectionStatus, move_checkpoints, read_checkpoint
from projections.election import elected
from projections.errors import NotParked, StaleRead, UnknownPosition, UnknownReadModel
from projections.follower import FeedFollower, wait_any
from projections.projector import ProcessManager, Projector, Tables
from projections.rebuild import Rebuilder, rebuild_checkpoint
from projections.workers import (
    DATABASE_TROUBLE,
    STOP,
    OnFailure,
    ProcessWorker,
    ProjectorWorker,
    Worker,
    catch_up,
    take_batch,
)
from store.database import plain_url
from store.event_store import EventStore
from store.events import FeedCheckpoint

log = logging.getLogger(__name__)

__all__ = ["ProjectionRunner", "ProjectionStatus", "StaleRead", "UnknownPosition"]


class ProjectionRunner:
    """Keeps every projector and process manager caught up with the feed, while elected."""

    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        projectors: Sequence[Projector],
        *,
        process_managers: Sequence[ProcessManager] = (),
        batch_size: int = 500,
        poll_interval: float = 1.0,
        on_failure: OnFailure = STOP,
    ) -> None:
        self.engine = engine
        self.store = store
        self.projectors = {p.name: p for p in projectors}
        self.process_managers = {m.name: m for m in process_managers}
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.on_failure = on_failure
        self.is_leader = False
        self.follower = FeedFollower(batch_size=batch_size, poll_interval=poll_interval)
        self.rebuilds = Rebuilder(engine, store, batch_size=batch_size, on_failure=on_failure)
        self._progress = asyncio.Event()

    # ------------------------------------------------------------------ running

    def wake(self, position: int | None = None) -> None:
        """There is more in the feed (a doorbell ring); the safety poll catches any lost one."""
        self.follower.wake(position)

    async def run(self, stop: asyncio.Event) -> None:
        """Compete for leadership and, while leader, keep every projector caught up."""
        await self.ensure_checkpoints()
        url = plain_url(self.engine.url.render_as_string(False))
        while not stop.is_set():
            try:
                async with elected(url, self.wake) as leadership:
                    if leadership is not None:
                        self.is_leader = True
                        log.info("this process runs the projections (pid %d)", os.getpid())
                        await self.follower.follow(stop, self.run_once, between=leadership.confirm)
            except DATABASE_TROUBLE:
                log.warning(
                    "projection runner lost its database connection; retrying", exc_info=True
                )
            finally:
                self.is_leader = False
            await wait_any(stop, seconds=self.poll_interval)

    async def run_once(self) -> int:
        """One pass: every projector and process manager gets the batch of the feed beyond its
        checkpoint, read once for all those that stand at the same place (in the steady state,
        all of them: they move in step); then a step of any rebuild. Returns the size of the
        largest batch read (a full one: more may be waiting).

        Each worker with events of its types takes them and moves its checkpoint in a
        transaction of its own; the checkpoints of those with none of their types in the batch
        move together in one statement, each only from the place it was read at. One that lags
        (new, or restarted after a failure) reads batches of its own and holds no one back.
        """
        places = await checkpoints.running_places(self.engine)
        standing: dict[FeedCheckpoint, list[Worker]] = {}
        for worker in self._workers():
            if (place := places.get(worker.checkpoint_name)) is not None:
                standing.setdefault(place, []).append(worker)
        read = 0
        idle: list[tuple[str, FeedCheckpoint, FeedCheckpoint]] = []
        for place, workers in standing.items():
            events = await self.store.read_feed(place, limit=self.batch_size)
            if not events:
                continue
            read = max(read, len(events))
            self.follower.saw(events)
            for worker in workers:
                if any(event.event_type in worker.event_types for event in events):
                    await take_batch(self.engine, worker, place, events, self.on_failure)
                else:
                    idle.append((worker.checkpoint_name, place, events[-1].checkpoint))
        if idle:
            await move_checkpoints(self.engine, idle)
        for projector in self.projectors.values():
            if rebuild_checkpoint(projector.name) in places:
                read += await self.rebuilds.step(projector)
        if read:
            self._progress.set()
            self._progress = asyncio.Event()
        return read

    def _workers(self) -> list[Worker]:
        return [
            *(
                ProjectorWorker(self.engine, p, p.name, Tables.live(p.tables))
                for p in self.projectors.values()
            ),
            *(ProcessWorker(self.engine, m) for m in self.process_managers.values()),
        ]

    async def catch_up(self, projector: Projector, checkpoint_name: str, tables: Tables) -> int:
        """One batch from the checkpoint named `checkpoint_name` into `tables`."""
        worker = ProjectorWorker(self.engine, projector, checkpoint_name, tables)
        return await catch_up(
            self.engine, self.store, worker, limit=self.batch_size, on_failure=self.on_failure
        )

    async def advance(self, manager: ProcessManager, *, limit: int | None = None) -> int:
        """One batch of the feed through `manager`: its commands, then its state and checkpoint."""
        worker = ProcessWorker(self.engine, manager)
        limit = limit or self.batch_size
        return await catch_up(
            self.engine, self.store, worker, limit=limit, on_failure=self.on_failure
        )

    # ------------------------------------------------------------------ managing

    def projector(self, name: str) -> Projector:
        """The projector called `name`; KeyError if there is none."""
        return self.projectors[name]

    async def rebuild(self, name: str) -> bool:
        """Start rebuilding `name` from the first event; False if one is already under way."""
        started = await self.rebuilds.start(self.projector(name))
        self.wake()
        return started

    async def drive_rebuild(self, name: str, on_progress: Callable[[int, int], None]) -> None:
        """Rebuild `name` in this process until it is swapped in, reporting (position, head)."""
        projector = self.projector(name)
        await self.rebuild(name)
        await self.rebuilds.drive(projector, on_progress)

    async def ensure_checkpoints(self) -> None:
        """A checkpoint at the start of the feed for every worker that has none yet."""
        await checkpoints.ensure_checkpoints(
            self.engine, [*self.projectors, *self.process_managers]
        )

    async def restart(self, name: str) -> None:
        """Let a failed projector try again from where it stopped (after a fix)."""
        await checkpoints.restart(self.engine, name)
        self.wake()

    async def parked(self, name: str | None = None) -> list[parking.ParkedEvent]:
        """The events parked by read model `name` (or by every one), in order;
        `UnknownReadModel` if `name` is none."""
        if name is not None:
            self._read_model(name)
        return await parking.parked_events(self.engine, name)

    async def retry_parked(self, name: str) -> parking.Retried:
        """Replay the events read model `name` parked, in order (projections/parking.py)."""
        retried = await parking.retry(self.engine, self.store.upcasters, self._read_model(name))
        self._progress.set()
        self._progress = asyncio.Event()
        return retried

    async def skip_parked(self, name: str, position: int) -> None:
        """Drop the event at `position` parked by read model `name`; `NotParked` if none is.
        Events of its stream held behind it stay parked until a retry."""
        self._read_model(name)
        if not await parking.skip(self.engine, name, position):
            raise NotParked(name, position)

    def _read_model(self, name: str) -> Projector:
        if name not in self.projectors:
            raise UnknownReadModel(name, sorted(self.projectors), name in self.process_managers)
        return self.projectors[name]

    async def statuses(self, *, include_rebuilds: bool = False) -> list[ProjectionStatus]:
        """Each projection's place, lag and status (`rebuilding` while a rebuild runs)."""
        return await checkpoints.statuses(self.engine, include_rebuilds=include_rebuilds)

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
                reached = await read_checkpoint(connection, name)
            if reached is not None and reached >= target:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise StaleRead(f"projection {name} has not reached position {position}")
            # Progress in this process wakes us at once; another process's runner is polled.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(remaining, 0.05))
