"""Read-side benchmark, in one run on one fresh database of 100,000 user registrations.

1. Rebuild rate of the users view: `ProjectionRunner.drive_rebuild("users")` against the
   baseline of the same run, which reads the same feed in batches of the same size and upserts
   the same rows by hand (one multi-row INSERT per batch, plus a checkpoint), into a copy of
   the table. After a round to warm both, the median of interleaved rounds: prints events/s
   of both and the ratio (target >= 0.7).
2. Latency of `users(search:)` over HTTP: a real `chronicle serve` on that database, queried
   one request at a time for a word of a name; prints p50 and p99 (target p99 < 50 ms).

    python -m benchmarks.projections [--events 100000] [--queries 500] [--rounds 3] [--server URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid

import asyncpg
import httpx

from api.app import all_projectors
from projections.runner import ProjectionRunner
from store.database import create_engine
from store.event_store import EventStore
from store.events import FEED_START, NewEvent, StreamAppend, StreamState
from store.migrations import upgrade

FIRST = [
    "ada",
    "grace",
    "alan",
    "edsger",
    "barbara",
    "donald",
    "margaret",
    "ken",
    "linus",
    "guido",
    "katherine",
    "dennis",
    "john",
    "frances",
    "radia",
    "tim",
    "leslie",
    "niklaus",
]
LAST = [
    "lovelace",
    "hopper",
    "turing",
    "dijkstra",
    "liskov",
    "knuth",
    "hamilton",
    "thompson",
    "torvalds",
    "rossum",
    "johnson",
    "ritchie",
    "backus",
    "allen",
    "perlman",
    "lee",
]


def name_of(i: int) -> str:
    rng = random.Random(i)
    return f"{rng.choice(FIRST).title()} {rng.choice(LAST).title()} {i:06}"


async def seed(store: EventStore, count: int) -> None:
    """`count` registrations, 100 streams per append, 8 writers."""

    async def writer(start: int) -> None:
        for base in range(start, count, 800):
            appends = [
                StreamAppend(
                    stream_id=f"user-{i:06}",
                    stream_type="User",
                    expected=StreamState.NO_STREAM,
                    events=[
                        NewEvent(
                            event_type="UserRegistered",
                            data={
                                "user_id": f"user-{i:06}",
                                "email": f"u{i}@example.com",
                                "name": name_of(i),
                                "age": 13 + i % 100,
                            },
                        )
                    ],
                )
                for i in range(base, min(base + 100, count))
            ]
            if appends:
                await store.append(appends)

    await asyncio.gather(*(writer(s) for s in range(0, 800, 100)))


async def baseline_rebuild(store: EventStore, url: str, batch: int) -> float:
    """Read the feed in batches and upsert the rows by hand; events per second."""
    connection = await asyncpg.connect(url)
    await connection.execute("DROP TABLE IF EXISTS users_baseline")
    await connection.execute("CREATE TABLE users_baseline (LIKE users_view INCLUDING ALL)")
    await connection.execute("CREATE TABLE IF NOT EXISTS baseline_checkpoint (position bigint)")
    started, checkpoint, applied = time.perf_counter(), FEED_START, 0
    while events := await store.read_feed(checkpoint, limit=batch):
        registered = [e for e in events if e.event_type == "UserRegistered"]
        async with connection.transaction():
            await connection.execute(
                "INSERT INTO users_baseline (id, email, name, age, age_group, version, "
                "created_at, updated_at) SELECT id, email, name, age, 'ADULT', 1, at, at FROM "
                "unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::timestamptz[]) "
                "AS r(id, email, name, age, at) ON CONFLICT (id) DO UPDATE SET "
                "name = excluded.name, age = excluded.age",
                [e.stream_id for e in registered],
                [e.data["email"] for e in registered],
                [e.data["name"] for e in registered],
                [e.data["age"] for e in registered],
                [e.recorded_at for e in registered],
            )
            await connection.execute(
                "UPDATE baseline_checkpoint SET position = $1", events[-1].position
            )
        checkpoint = events[-1].checkpoint
        applied += len(events)
    elapsed = time.perf_counter() - started
    await connection.close()
    return applied / elapsed


async def chronicle_rebuild(runner: ProjectionRunner, total: int) -> float:
    started = time.perf_counter()
    await runner.drive_rebuild("users", lambda position, head: None)
    return total / (time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def search_latencies(url: str, queries: int) -> list[float]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "warning"}
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)], env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.1)
            document = (
                "query($q: String!) { users(search: $q, first: 20) "
                "{ totalCount edges { node { id name } } } }"
            )
            rng = random.Random(7)
            latencies = []
            for i in range(queries + 20):
                term = f"{rng.choice(FIRST)} {rng.choice(LAST)[:4]}"
                started = time.perf_counter()
                response = client.post(
                    "/graphql", json={"query": document, "variables": {"q": term}}
                )
                elapsed = time.perf_counter() - started
                assert "errors" not in response.json(), response.text
                if i >= 20:  # the first ones warm the caches and the connection pool
                    latencies.append(elapsed * 1000)
            return latencies
    finally:
        server.terminate()
        server.wait(20)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (median)")
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
    engine = create_engine(url, pool_size=10)
    store = EventStore(engine)
    try:
        await upgrade(engine)
        print(f"seeding {args.events} registrations ...", flush=True)
        await seed(store, args.events)
        runner = ProjectionRunner(engine, store, all_projectors(), batch_size=args.batch)
        await runner.ensure_checkpoints()
        print("building the read models once ...", flush=True)
        while await runner.run_once():
            pass
        # One round unmeasured, to warm both (caches, prepared statements, the tables'
        # first copies), then interleaved rounds, so noise hits both alike.
        await baseline_rebuild(store, url, args.batch)
        await chronicle_rebuild(runner, args.events)
        rates = []
        for _ in range(args.rounds):
            a = await baseline_rebuild(store, url, args.batch)
            b = await chronicle_rebuild(runner, args.events)
            rates.append((a, b))
            print(f"  round: baseline {a:,.0f} ev/s, chronicle {b:,.0f} ev/s", flush=True)
        a = statistics.median(r[0] for r in rates)
        b = statistics.median(r[1] for r in rates)
        print(
            f"users view rebuild: baseline {a:,.0f} ev/s, chronicle {b:,.0f} ev/s, "
            f"ratio {b / a:.2f} (target >= 0.7)"
        )
        latencies = search_latencies(url, args.queries)
        q = statistics.quantiles(latencies, n=100)
        print(
            f"users(search:) over HTTP, {len(latencies)} queries on {args.events:,} users: "
            f"p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms (target p99 < 50 ms)"
        )
    finally:
        await store.close()
        await engine.dispose()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
