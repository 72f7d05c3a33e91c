"""The gap-safe feed against a model of the transactions that wrote it.

Writers hold transactions open for random times (raw connections calling `append_to_streams`
inside an explicit BEGIN, sometimes twice, so an old transaction id writes late positions),
commit or roll them back in whatever order their hold times give, and mix in plain
`EventStore.append` calls. A reader follows `read_feed` from its checkpoint with random batch
sizes. The model records, on one logical clock, when each transaction began, wrote, asked to
end and ended, and what every read returned; the assertions compare the two.

A failure names its seed: rerun it with `CHRONICLE_FEED_SEED=<seed>`. The seed fixes the plan
(streams, hold times, outcomes, batch sizes); the interleaving is whatever Postgres makes of it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import uuid
from dataclasses import dataclass, field

import asyncpg
import pytest
from sqlalchemy import text

from store.database import plain_url
from store.event_store import HELD_BACK_RETRY, EventStore
from store.events import FEED_START, RecordedEvent
from tests.integration.test_feed import one_event

SEEDS = (
    [int(os.environ["CHRONICLE_FEED_SEED"])]
    if os.environ.get("CHRONICLE_FEED_SEED")
    else [1, 7, 42]
)
WRITERS = 5
TRANSACTIONS_PER_WRITER = 7
STREAMS = [f"model-{n}" for n in range(7)]
BATCH_SIZES = [1, 1, 2, 3, 5, 8, 50]
# Longer than any run of the plan can take; only a stuck feed (or a transaction left open
# elsewhere on the cluster for this long) gets here.
DEADLINE = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedTransaction:
    held: bool
    """A raw transaction held open (else one `EventStore.append`)."""
    streams: tuple[str, ...]
    writes: int
    """How many `append_to_streams` calls a held transaction makes, each to all its streams."""
    holds: tuple[float, ...]
    """Seconds before the first write, between writes and before the end (held only)."""
    commit: bool


@dataclass(slots=True, kw_only=True)
class Transaction:
    """What the model knows of one transaction, in ticks of the model's clock."""

    name: str
    held: bool
    commit: bool
    began: int
    wrote: int | None = None
    """The first write returned: the transaction id is taken."""
    ending: int | None = None
    """COMMIT or ROLLBACK is about to be sent (for a plain append: the call began)."""
    ended: int | None = None
    xid: int | None = None
    event_ids: list[uuid.UUID] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class Read:
    began: int
    ended: int
    events: list[RecordedEvent]


class FeedModel:
    """The transactions and reads of one run, and a doorbell rung whenever one ends."""

    def __init__(self) -> None:
        self._clock = itertools.count(1)
        self.transactions: list[Transaction] = []
        self.reads: list[Read] = []
        self.generation = 0
        self.writers_done = False
        self._changed = asyncio.Condition()

    def tick(self) -> int:
        return next(self._clock)

    async def ring(self) -> None:
        async with self._changed:
            self.generation += 1
            self._changed.notify_all()

    async def wait_past(self, generation: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.generation > generation)


def plan_writers(rng: random.Random) -> list[tuple[float, list[PlannedTransaction]]]:
    """Each writer's start delay and its transactions, one after the other."""
    writers: list[tuple[float, list[PlannedTransaction]]] = []
    for _ in range(WRITERS):
        planned: list[PlannedTransaction] = []
        for _ in range(TRANSACTIONS_PER_WRITER):
            held = rng.random() < 0.65
            writes = rng.choice([1, 1, 2]) if held else 1
            planned.append(
                PlannedTransaction(
                    held=held,
                    streams=tuple(rng.sample(STREAMS, rng.choice([1, 1, 2]))),
                    writes=writes,
                    holds=tuple(rng.uniform(0, 0.04) for _ in range(writes + 1)),
                    commit=not held or rng.random() < 0.75,
                )
            )
        writers.append((rng.uniform(0, 0.02), planned))
    return writers


async def held_append(connection: asyncpg.Connection) -> str:
    """The call of `append_to_streams` for events with no command to record.

    The parameters after the metadata describe a command (its id, and in later migrations
    more of it): all NULL here, however many the migrated function has.
    """
    arity = int(
        await connection.fetchval(
            "SELECT pronargs FROM pg_proc WHERE proname = 'append_to_streams'"
        )
    )
    return (
        "SELECT transaction_id FROM append_to_streams($1::text[], $2::text[], $3::integer[], "
        "$4::uuid[], $5::integer[], $6::integer[], $7::text[], $8::integer[], "
        "$9::text[]::jsonb[], '{}'::jsonb" + ", NULL" * (arity - 10) + ")"
    )


async def held_write(
    connection: asyncpg.Connection, statement: str, streams: tuple[str, ...], rng: random.Random
) -> tuple[int, list[uuid.UUID]]:
    """One `append_to_streams` call in the connection's open transaction: 1-2 events a stream."""
    counts = [rng.choice([1, 1, 2]) for _ in streams]
    event_ids = [uuid.uuid4() for _ in range(sum(counts))]
    event_streams = [i for i, count in enumerate(counts, 1) for _ in range(count)]
    nths = [nth for count in counts for nth in range(1, count + 1)]
    xid = await connection.fetchval(
        statement,
        list(streams),
        ["Test"] * len(streams),
        [-1] * len(streams),
        event_ids,
        event_streams,
        nths,
        ["Held"] * len(event_ids),
        [1] * len(event_ids),
        ["{}"] * len(event_ids),
    )
    return int(xid), event_ids


async def run_writer(
    name: str,
    start_delay: float,
    planned: list[PlannedTransaction],
    connection: asyncpg.Connection,
    store: EventStore,
    model: FeedModel,
    rng: random.Random,
) -> None:
    statement = await held_append(connection)
    await asyncio.sleep(start_delay)  # the plan's input, not synchronisation
    for n, plan in enumerate(planned):
        transaction = Transaction(
            name=f"{name}.{n}", held=plan.held, commit=plan.commit, began=model.tick()
        )
        model.transactions.append(transaction)
        if plan.held:
            await connection.execute("BEGIN")
            for write in range(plan.writes):
                await asyncio.sleep(plan.holds[write])
                xid, event_ids = await held_write(connection, statement, plan.streams, rng)
                transaction.xid = xid
                transaction.wrote = transaction.wrote or model.tick()
                transaction.event_ids.extend(event_ids)
            await asyncio.sleep(plan.holds[-1])
            transaction.ending = model.tick()
            await connection.execute("COMMIT" if plan.commit else "ROLLBACK")
        else:
            transaction.ending = transaction.began
            result = await store.append([one_event(stream) for stream in plan.streams])
            transaction.wrote = model.tick()
            transaction.xid = result.events[0].transaction_id
            transaction.event_ids.extend(event.event_id for event in result.events)
        transaction.ended = model.tick()
        await model.ring()


async def feed_xmin(store: EventStore) -> int:
    async with store.engine.connect() as connection:
        value = (
            await connection.execute(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text"))
        ).scalar_one()
    return int(value)


async def follow_feed(store: EventStore, model: FeedModel, rng: random.Random) -> None:
    """Read the feed from its checkpoint until the writers are done and it has caught up."""
    checkpoint = FEED_START
    while True:
        generation = model.generation
        done = model.writers_done
        # Every writer's transaction has ended: the feed is at its head once no transaction
        # older than the newest committed one is in flight, on this whole cluster.
        newest = max((t.xid or 0 for t in model.transactions if t.commit), default=0)
        caught_up = done and await feed_xmin(store) > newest
        began = model.tick()
        batch = await store.read_feed(checkpoint, limit=rng.choice(BATCH_SIZES))
        model.reads.append(Read(began=began, ended=model.tick(), events=batch))
        if batch:
            checkpoint = batch[-1].checkpoint
        elif caught_up:
            return
        elif done:
            # Only a transaction outside this test can hold the feed back now, and nothing
            # here rings when it ends: look again after the store's held-back interval.
            await asyncio.sleep(HELD_BACK_RETRY)
        else:
            await model.wait_past(generation)


def check(model: FeedModel, seed: int) -> None:
    """The reader's deliveries against the model of what was written, committed and open."""
    owner = {event_id: t for t in model.transactions for event_id in t.event_ids}
    delivered = [event for read in model.reads for event in read.events]
    ids = [event.event_id for event in delivered]
    committed = {event_id for event_id, t in owner.items() if t.commit}
    assert committed, f"seed {seed}: the plan committed nothing"

    unknown = [e for e in delivered if e.event_id not in owner]
    assert not unknown, f"seed {seed}: events no transaction of the model wrote: {unknown}"
    assert len(ids) == len(set(ids)), f"seed {seed}: an event was delivered twice"
    rolled_back = [e.event_id for e in delivered if not owner[e.event_id].commit]
    assert not rolled_back, f"seed {seed}: rolled-back events were delivered: {rolled_back}"
    missing = [(owner[i].name, i) for i in committed - set(ids)]
    assert not missing, f"seed {seed}: committed events the reader never got: {missing}"

    versions: dict[str, list[int]] = {}
    for event in delivered:
        versions.setdefault(event.stream_id, []).append(event.version)
    for stream, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), (
            f"seed {seed}: stream {stream} came in versions {seen}"
        )

    held = [t for t in model.transactions if t.held and t.wrote is not None]
    for read in model.reads:
        for event in read.events:
            writer = owner[event.event_id]
            assert writer.ending is not None and writer.ending < read.ended, (
                f"seed {seed}: read {read.began}-{read.ended} saw {writer.name} still open"
            )
        # A transaction with an id that was in flight for the whole read holds the feed back:
        # nothing written by a younger transaction may come out of that read.
        for t in held:
            assert t.wrote is not None and t.ending is not None and t.xid is not None
            if t.wrote < read.began and t.ending > read.ended:
                younger = [
                    (owner[e.event_id].name, e.position)
                    for e in read.events
                    if e.transaction_id > t.xid
                ]
                assert not younger, (
                    f"seed {seed}: read {read.began}-{read.ended} passed {t.name} "
                    f"(xid {t.xid}), still open, to deliver {younger}"
                )

    index = {event_id: n for n, event_id in enumerate(ids)}
    # An event of a transaction that committed before another began comes before all of
    # that one's events: the later one's id was taken after the earlier one's commit.
    spans = [
        (t, min(index[i] for i in t.event_ids), max(index[i] for i in t.event_ids))
        for t in model.transactions
        if t.commit and t.event_ids
    ]
    for first, _, first_last in spans:
        for later, later_first, _ in spans:
            assert first.ended is not None
            if first.ended < later.began:
                assert first_last < later_first, (
                    f"seed {seed}: {first.name} committed (tick {first.ended}) before "
                    f"{later.name} began (tick {later.began}), yet the feed gave "
                    f"{later.name}'s event at {later_first} before {first.name}'s at "
                    f"{first_last}"
                )


@pytest.mark.parametrize("seed", SEEDS)
async def test_a_reader_gets_every_committed_event_once_in_commit_order(
    store: EventStore, database_url: str, seed: int
) -> None:
    print(f"feed model seed {seed} (rerun with CHRONICLE_FEED_SEED={seed})")
    rng = random.Random(seed)
    plan = plan_writers(rng)
    writer_rngs = [random.Random(rng.random()) for _ in plan]
    reader_rng = random.Random(rng.random())
    model = FeedModel()
    connections = [await asyncpg.connect(plain_url(database_url)) for _ in plan]
    reading = asyncio.create_task(follow_feed(store, model, reader_rng))
    try:
        async with asyncio.timeout(DEADLINE):
            await asyncio.gather(
                *(
                    run_writer(f"w{n}", delay, planned, connection, store, model, writer_rng)
                    for n, ((delay, planned), connection, writer_rng) in enumerate(
                        zip(plan, connections, writer_rngs, strict=True)
                    )
                )
            )
            model.writers_done = True
            await model.ring()
            await reading
    except TimeoutError:
        pytest.fail(f"seed {seed}: the run did not finish within {DEADLINE} s")
    finally:
        reading.cancel()
        for connection in connections:
            await connection.close()
    check(model, seed)
