"""Append throughput of the event store against the physical baseline, in one run.

(a) baseline: raw asyncpg, one single-event transaction per write into a table of the same
    shape as `events` (identity position, uuid, jsonb, xid8 default), no store logic;
(b) store: `EventStore.append` of one new stream per command, with a commandId, as the
    command handler writes a registration.

Both run against the same fresh database, with 1 and 16 concurrent writers, interleaved over
several rounds so machine noise hits both alike. Prints events/s and the ratio b/a.

    python -m benchmarks.append [--seconds 5] [--rounds 3] [--server postgresql://...]

The server defaults to TEST_DATABASE_URL, else 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from store.database import create_engine
from store.event_store import EventStore
from store.events import NewEvent, StreamAppend, StreamState
from store.migrations import upgrade

BASELINE_TABLE = """
CREATE TABLE baseline_events (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    stream_id text NOT NULL,
    stream_type text NOT NULL,
    version integer NOT NULL,
    event_type text NOT NULL,
    schema_version integer NOT NULL DEFAULT 1,
    data jsonb NOT NULL,
    metadata jsonb NOT NULL,
    transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
);
CREATE INDEX ON baseline_events (transaction_id, position);
"""
BASELINE_INSERT = (
    "INSERT INTO baseline_events (event_id, stream_id, stream_type, version, event_type, data, "
    "metadata) VALUES ($1, $2, 'User', 1, 'UserRegistered', $3::jsonb, $4::jsonb)"
)
DATA = '{"user_id": "%s", "email": "someone@example.com", "name": "Someone", "age": 30}'


async def run_writers(writers: int, seconds: float, write: Callable[[], Awaitable[None]]) -> float:
    """Events per second that `writers` concurrent loops of `write` reach in `seconds`."""
    deadline = time.perf_counter() + seconds
    counts = [0] * writers

    async def loop(i: int) -> None:
        while time.perf_counter() < deadline:
            await write()
            counts[i] += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(writers)))
    return sum(counts) / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--server",
        default=os.environ.get(
            "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()

    name = f"chronicle_bench_{uuid.uuid4().hex[:8]}"
    base = args.server.rsplit("/", 1)[0]
    admin = await asyncpg.connect(f"{base}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    engine = create_engine(url, pool_size=16)
    pool = await asyncpg.create_pool(url, min_size=16, max_size=16)
    try:
        await upgrade(engine)
        async with pool.acquire() as connection:
            await connection.execute(BASELINE_TABLE)
        store = EventStore(engine)

        async def baseline() -> None:
            stream = str(uuid.uuid4())
            async with pool.acquire() as connection, connection.transaction():
                await connection.execute(
                    BASELINE_INSERT, uuid.uuid4(), stream, DATA % stream, '{"actor": "bench"}'
                )

        async def store_append() -> None:
            stream = str(uuid.uuid4())
            command_id = str(uuid.uuid4())
            await store.append(
                [
                    StreamAppend(
                        stream_id=stream,
                        stream_type="User",
                        expected=StreamState.NO_STREAM,
                        events=[NewEvent(event_type="UserRegistered", data={"user_id": stream})],
                    )
                ],
                metadata={"commandId": command_id, "actor": "bench"},
                command_id=command_id,
            )

        # Warm both paths (connections, prepared statements) before measuring.
        await run_writers(16, 1.0, baseline)
        await run_writers(16, 1.0, store_append)
        print(f"{'writers':>7} {'baseline ev/s':>14} {'store ev/s':>11} {'ratio b/a':>10}")
        for writers in (1, 16):
            ratios, base_rates, store_rates = [], [], []
            for _ in range(args.rounds):
                a = await run_writers(writers, args.seconds, baseline)
                b = await run_writers(writers, args.seconds, store_append)
                base_rates.append(a)
                store_rates.append(b)
                ratios.append(b / a)
            print(
                f"{writers:>7} {statistics.median(base_rates):>14.0f} "
                f"{statistics.median(store_rates):>11.0f} {statistics.median(ratios):>10.2f}"
            )
        print("target: ratio >= 0.75 with 16 writers (median of the rounds)")
    finally:
        await pool.close()
        await engine.dispose()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
