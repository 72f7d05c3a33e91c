"""Verifying a read model: replay the log into scratch tables and compare them with the live ones.

The scratch tables are temporary copies of the projector's tables (`pg_temp.<table>__verify`,
same columns, defaults, generated columns and constraints), private to one connection: a verify
never meets a rebuild's `__rebuild` copies nor another verify's, and if the process dies its
tables die with its session. They are dropped at the end, on failure and on cancellation too.

Comparing at one position: the replay first follows the live checkpoint in short batches,
without locks. Then one transaction locks the live checkpoint row (`FOR SHARE`: the runner,
which locks it `FOR UPDATE` before it touches the live tables, waits), applies the few events
the runner applied meanwhile, and compares, so both sides stand at exactly that checkpoint.
The lock is held only while comparing; the runner, and readers of the feed, are held back for
that long and no longer. A `failed` read model is verified at the checkpoint it stopped at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.drift import TableDrift, count_rows, table_drift
from projections.projector import Projector, Tables, apply_events
from store.event_store import EventStore
from store.events import FEED_START, FeedCheckpoint

Progress = Callable[[int, int], None]
"""Told (position replayed, position of the live checkpoint) as the replay goes."""


def verify_table(name: str) -> str:
    """The scratch copy of table `name`: temporary, so private to the verifying session."""
    return f"pg_temp.{name}__verify"


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """How a read model compared with a replay of the log, at its live checkpoint."""

    name: str
    checkpoint: FeedCheckpoint
    status: str
    rows: int
    """Rows in the live tables."""
    drift: tuple[TableDrift, ...]

    @property
    def ok(self) -> bool:
        return not self.drift


async def verify_projection(
    engine: AsyncEngine,
    store: EventStore,
    projector: Projector,
    *,
    batch_size: int = 500,
    on_progress: Progress | None = None,
) -> Verification:
    """Replay the log into scratch copies of `projector`'s tables up to its live checkpoint and
    compare them, row by row by primary key, with its live tables at that same checkpoint."""
    replay = _Replay(store, projector, batch_size, on_progress or (lambda done, total: None))
    async with engine.connect() as connection:
        try:
            async with connection.begin():
                for table in projector.tables:
                    # A table created in pg_temp is temporary (as CREATE TEMP TABLE).
                    await connection.execute(
                        text(f"CREATE TABLE {verify_table(table)} (LIKE {table} INCLUDING ALL)")
                    )
            while True:  # follow the live checkpoint until little is left to do under the lock
                async with connection.begin():
                    target = await _live_checkpoint(connection, projector.name, lock=False)
                if target is None or await replay.to(connection, target.checkpoint) < batch_size:
                    break
            async with connection.begin():
                live = await _live_checkpoint(connection, projector.name, lock=True)
                if live is None:
                    raise LookupError(f"projection {projector.name} has no checkpoint")
                await replay.to(connection, live.checkpoint)
                drift: list[TableDrift] = []
                rows = 0
                for table in projector.tables:
                    rows += await count_rows(connection, table)
                    found = await table_drift(connection, table, verify_table(table))
                    if found is not None:
                        drift.append(found)
            return Verification(
                name=projector.name,
                checkpoint=live.checkpoint,
                status=live.status,
                rows=rows,
                drift=tuple(drift),
            )
        finally:
            await _drop_scratch(connection, projector)


@dataclass(frozen=True, slots=True)
class _Live:
    checkpoint: FeedCheckpoint
    status: str


async def _live_checkpoint(connection: AsyncConnection, name: str, *, lock: bool) -> _Live | None:
    row = (
        await connection.execute(
            text(
                "SELECT transaction_id::text AS tx, position, status "
                "FROM projection_checkpoints WHERE name = :name" + (" FOR SHARE" if lock else "")
            ),
            {"name": name},
        )
    ).first()
    return None if row is None else _Live(FeedCheckpoint(int(row.tx), row.position), row.status)


class _Replay:
    """The scratch tables' place in the feed, moved on by applying events up to a target."""

    def __init__(
        self, store: EventStore, projector: Projector, batch_size: int, on_progress: Progress
    ) -> None:
        self.store = store
        self.projector = projector
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.tables = Tables({table: verify_table(table) for table in projector.tables})
        self.types = sorted(projector.event_types)
        self.place = FEED_START

    async def to(self, connection: AsyncConnection, target: FeedCheckpoint) -> int:
        """Apply the projector's events after `place` up to and including `target`, in batches
        of their own transactions (or in the caller's, if it has one open). Returns how many."""
        if self.place > target:
            raise RuntimeError(f"the live checkpoint of {self.projector.name} moved back")
        applied = 0
        while self.place < target:
            # Every event up to the live checkpoint is readable: the runner read them.
            events = await self.store.read_feed(self.place, limit=self.batch_size, types=self.types)
            wanted = [event for event in events if event.checkpoint <= target]
            if wanted:
                if connection.in_transaction():
                    await apply_events(connection, self.projector, wanted, self.tables)
                else:
                    async with connection.begin():
                        await apply_events(connection, self.projector, wanted, self.tables)
            applied += len(wanted)
            if len(wanted) < self.batch_size:
                self.place = target  # the feed holds nothing more of ours up to the target
            else:
                self.place = wanted[-1].checkpoint
            self.on_progress(self.place.position, target.position)
        return applied


async def _drop_scratch(connection: AsyncConnection, projector: Projector) -> None:
    """Drop the scratch tables; if that fails, end the session, which drops them anyway."""
    try:
        if connection.in_transaction():
            await connection.rollback()
        async with connection.begin():
            for table in projector.tables:
                await connection.execute(text(f"DROP TABLE IF EXISTS {verify_table(table)}"))
    except BaseException:
        await connection.invalidate()
        raise


def describe(verification: Verification) -> str:
    """One line per read model (per drifting table), for people: `users: OK (...)` or
    `users: DRIFT: 3 rows differ in users_view at position 41: missing u1; extra u9; ...`."""
    at = f"at position {verification.checkpoint.position}"
    if verification.status != "running":
        at += f", where it stopped (status {verification.status})"
    if verification.ok:
        return f"{verification.name}: OK ({verification.rows:,} rows {at})"
    lines = []
    for drift in verification.drift:
        rows = "1 row differs" if drift.count == 1 else f"{drift.count:,} rows differ"
        kinds = []
        for kind, keys in (
            ("missing", drift.missing),
            ("extra", drift.extra),
            ("changed", drift.changed),
        ):
            if keys:
                more = drift.counts[kind] - len(keys)
                kinds.append(f"{kind} {', '.join(keys)}" + (f" and {more:,} more" if more else ""))
        where = f"{drift.table} {at}"
        lines.append(f"{verification.name}: DRIFT: {rows} in {where}: {'; '.join(kinds)}")
    return "\n".join(lines)
