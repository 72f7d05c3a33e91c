"""The API's readers of the log across 999,999 -> 1,000,000 and the 32-bit wraparound, end to end.

`chronicle serve` runs on a private cluster whose transaction ids are about to cross the
boundary. Part of the log is written before the server starts (its runner starts behind) and
part while subscribers watch, so the crossing happens both in a catch-up and live. What every
reader returns is checked against the log sorted here, by number.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from gql import Client
from gql.transport.aiohttp import AIOHTTPTransport
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from store.database import create_engine
from store.event_store import EventStore
from tests.e2e.conftest import GraphQLClient, Server, start_server
from tests.e2e.live import EVENTS, LEGACY_WS, Subscriber, append_many, positions
from tests.xid_cluster import DIGITS_BOUNDARY, WRAPAROUND, XidClusters

LEAD = 120
"""Transaction ids left before the boundary: the writes before the server starts take about
half of them, the rest cross it live."""

REGISTER = """mutation($email: String!, $age: Int!) {
  registerUser(input: {email: $email, name: "Ada Lovelace", age: $age}) { position }
}"""
EVENTS_PAGE = """query($after: Position, $first: Int, $streamId: ID, $streamType: String,
                      $types: [String!]) {
  events(after: $after, first: $first, streamId: $streamId, streamType: $streamType,
         types: $types) { position streamId streamType version type }
}"""


class Boundary:
    def __init__(self, boundary: int, url: str, server: Server, engine: AsyncEngine) -> None:
        self.boundary = boundary
        self.url = url
        self.server = server
        self.engine = engine

    async def log(self) -> list[tuple[int, int, str, str, int]]:
        """(transaction id, position, stream, stream type, version), sorted here by number."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT transaction_id::text AS tx, position, stream_id, stream_type, "
                    "version FROM events"
                )
            )
            return sorted(
                (int(r.tx), r.position, r.stream_id, r.stream_type, r.version) for r in rows
            )


@pytest.fixture(params=[DIGITS_BOUNDARY, WRAPAROUND], ids=["999999-to-1000000", "wraparound"])
def boundary_url(
    request: pytest.FixtureRequest, xid_clusters: XidClusters
) -> Iterator[tuple[int, str]]:
    with xid_clusters.start(request.param - LEAD) as url:
        yield request.param, url


@pytest.fixture
async def boundary(
    boundary_url: tuple[int, str], tmp_path: Path
) -> AsyncIterator[tuple[Boundary, EventStore]]:
    number, url = boundary_url
    engine = create_engine(url, pool_size=10)
    store = EventStore(engine)
    # Before the server: a log its runner must catch up on, in small batches.
    await append_many(store, "Tick", 4, 10)
    env = {
        "DATABASE_URL": url,
        "CHRONICLE_PROJECTION_BATCH_SIZE": "7",
        "CHRONICLE_STALE_READ_TIMEOUT": "20",
    }
    server = start_server(env, tmp_path / "serve.log")
    try:
        yield Boundary(number, url, server, engine), store
    finally:
        server.stop()
        await store.close()
        await engine.dispose()
    assert "Traceback" not in server.output(), server.output()


async def test_queries_and_subscriptions_read_across_the_boundary(
    boundary: tuple[Boundary, EventStore],
) -> None:
    world, store = boundary
    first = (await world.log())[0][1]
    assert (await world.log())[-1][0] < world.boundary, "the first part ends before the boundary"
    transport = AIOHTTPTransport(url=world.server.graphql_url, ssl=False)
    async with Client(transport=transport, execute_timeout=60) as session:
        client = GraphQLClient(session)
        caught_up = Subscriber(world.server, EVENTS, after=str(first))
        live_ticks = Subscriber(world.server, EVENTS, protocol=LEGACY_WS, streamType="Tick")
        try:
            await caught_up.until(lambda got: len(got) >= 39)
            await _until_live(live_ticks, store)

            # Across the boundary, live: users through the API, ticks straight into the store.
            async def register(n: int) -> int:
                result = await client.execute(REGISTER, email=f"u{n}@example.com", age=13 + n)
                return int(result["registerUser"]["position"])

            registered = await asyncio.gather(*(register(n) for n in range(30)))
            ticks = await append_many(store, "Tick", 4, 12)
            log = await world.log()
            assert log[0][0] < world.boundary <= log[-1][0], "the log straddles the boundary"
            # The internal uniqueness claims are never shown by the public API.
            truth = [position for _, position, _, kind, _ in log if kind != "UniqueKey"]

            await caught_up.until(lambda got: truth[-1] in positions(got))
            assert positions(caught_up.received) == truth[1:]
            tick_truth = [p for _, p, _, kind, _ in log if kind == "Tick"]
            assert set(ticks) <= set(tick_truth)
            # Every tick, not the last one appended: four writers commit in any order, and the
            # feed delivers by commit, so the last returned need not be the last delivered.
            await live_ticks.until(lambda got: tick_truth[-1] in positions(got))
            got = positions(live_ticks.received)
            assert got == tick_truth[tick_truth.index(got[0]) :]

            # A catch-up that starts after the crossing reads the whole crossing from the store.
            resumed = Subscriber(world.server, EVENTS, after=str(first))
            try:
                await resumed.until(lambda got: truth[-1] in positions(got))
                assert positions(resumed.received) == truth[1:]
            finally:
                await resumed.close()
        finally:
            await caught_up.close()
            await live_ticks.close()

        await _assert_events_pages(client, log)

        # The registration the feed delivers last: positions are handed out before commit,
        # so the highest position need not be the last committed, and waiting for it would
        # not wait for a registration that committed after it.
        last = max((tx, p) for tx, p, *_ in log if p in set(registered))[1]
        users = await client.execute(
            "query($p: Position) { users(minPosition: $p) { totalCount } "
            "userSummary(minPosition: $p) { totalUsers } }",
            p=str(last),
        )
        assert users["users"]["totalCount"] == users["userSummary"]["totalUsers"] == 30
        statuses = await _settled_projections(client)
        head = str(log[-1][1])
        assert {s["name"]: (s["lag"], s["position"]) for s in statuses} == {
            s["name"]: (0, head) for s in statuses
        }


async def _until_live(subscriber: Subscriber, store: EventStore) -> None:
    """Write ticks until the live subscriber has received one: it is registered from then on."""
    for _ in range(50):
        [marker] = await append_many(store, "Tick", 1, 1)
        try:
            await subscriber.until(lambda got, p=marker: p in positions(got), within=1)
            return
        except TimeoutError:
            continue
    raise AssertionError("the subscription never went live")


async def _assert_events_pages(
    client: GraphQLClient, log: list[tuple[int, int, str, str, int]]
) -> None:
    async def pages(**filters: Any) -> list[dict[str, Any]]:
        read: list[dict[str, Any]] = []
        after = None
        while page := (await client.execute(EVENTS_PAGE, after=after, first=7, **filters))[
            "events"
        ]:
            read.extend(page)
            after = page[-1]["position"]
        return read

    assert positions(await pages()) == [p for _, p, _, k, _ in log if k != "UniqueKey"]
    assert positions(await pages(streamType="User")) == [p for _, p, _, k, _ in log if k == "User"]
    registered = await pages(types=["UserRegistered"])
    assert len(registered) == 30
    user = registered[-1]["streamId"]
    assert [e["version"] for e in await pages(streamId=user)] == [
        v for _, _, s, _, v in log if s == user
    ]


async def _settled_projections(client: GraphQLClient) -> list[dict[str, Any]]:
    """The `projections` figures once every read model and process reports no lag."""
    async with asyncio.timeout(30):
        while True:
            result = await client.execute("{ projections { name position lag status } }")
            if all(s["lag"] == 0 for s in result["projections"]):
                return list(result["projections"])
            await asyncio.sleep(0.05)  # another process's runner: poll its figures
