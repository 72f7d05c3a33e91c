"""Subscriptions end to end: real uvicorn, the gql client over websockets (graphql-transport-ws)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import websockets
from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from domain import orders
from store.command_handler import CommandHandler
from store.database import create_engine
from store.event_store import EventStore
from store.events import NewEvent, StreamAppend, StreamState
from tests.e2e.conftest import GraphQLClient, Server, start_server
from tests.e2e.test_commands import ADDRESS, new_product, new_user, run

EVENTS = """subscription($after: Position, $streamType: String, $types: [String!]) {
  events(after: $after, streamType: $streamType, types: $types) { position streamId version type }
}"""
ORDER_CHANGED = (
    "subscription($id: ID!) { orderChanged(orderId: $id) { status version totalCents } }"
)


def ws_url(server: Server) -> str:
    return server.graphql_url.replace("http://", "ws://")


@pytest.fixture
async def store(e2e_database_url: str) -> AsyncIterator[EventStore]:
    """A writer of its own on the server's database; its rings reach the server by NOTIFY."""
    engine = create_engine(e2e_database_url, pool_size=10)
    store = EventStore(engine)
    yield store
    await store.close()
    await engine.dispose()


class Subscriber:
    """A gql websocket subscription collecting what it receives in a background task."""

    def __init__(self, server: Server, document: str, **variables: Any) -> None:
        self.received: list[dict[str, Any]] = []
        self.error: Exception | None = None
        self.arrived = asyncio.Event()
        self._task = asyncio.create_task(self._run(ws_url(server), document, variables))

    async def _run(self, url: str, document: str, variables: dict[str, Any]) -> None:
        transport = WebsocketsTransport(url=url)
        try:
            async with Client(transport=transport) as session:
                request = gql(document)
                request.variable_values = variables
                async for result in session.subscribe(request):
                    self.received.append(next(iter(result.values())))
                    self.arrived.set()
        except TransportQueryError as error:
            self.error = error
            self.arrived.set()

    async def until(self, condition: Any, within: float = 30) -> None:
        async with asyncio.timeout(within):
            while not condition(self.received):
                self.arrived.clear()
                await self.arrived.wait()

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def append_many(
    store: EventStore, stream_type: str, writers: int, per_writer: int
) -> list[int]:
    """`writers` concurrent writers, each appending to a few streams of `stream_type`."""

    async def writer(w: int) -> list[int]:
        positions = []
        for i in range(per_writer):
            result = await store.append(
                [
                    StreamAppend(
                        stream_id=f"{stream_type}-{w}-{i % 4}",
                        stream_type=stream_type,
                        expected=StreamState.ANY,
                        events=[NewEvent(event_type="Ticked", data={"i": i})],
                    )
                ]
            )
            positions.append(result.position)
        return positions

    return sorted(
        p for ps in await asyncio.gather(*(writer(w) for w in range(writers))) for p in ps
    )


def positions(events: list[dict[str, Any]]) -> list[int]:
    return [int(e["position"]) for e in events]


def in_version_order(events: list[dict[str, Any]]) -> bool:
    versions: dict[str, list[int]] = {}
    for event in events:
        versions.setdefault(event["streamId"], []).append(event["version"])
    return all(v == sorted(v) and len(v) == len(set(v)) for v in versions.values())


async def ready(*subscribers: Subscriber, store: EventStore, stream_type: str) -> int:
    """Write markers until every subscriber has received one: all are live from then on. (A
    subscription from now misses what was written before the server registered it.)"""
    for _ in range(30):
        marker = await store.append(
            [
                StreamAppend(
                    stream_id=f"{stream_type}-marker-{uuid.uuid4().hex[:6]}",
                    stream_type=stream_type,
                    expected=StreamState.NO_STREAM,
                    events=[NewEvent(event_type="Ticked", data={})],
                )
            ]
        )
        try:
            for subscriber in subscribers:
                await subscriber.until(lambda got, p=marker.position: p in positions(got), within=1)
            return marker.position
        except TimeoutError:
            continue
    raise AssertionError("the subscription never went live")


async def test_three_subscribers_each_get_exactly_their_events_during_concurrent_writes(
    server: Server, store: EventStore
) -> None:
    kind = f"Live{uuid.uuid4().hex[:8]}"
    before = await append_many(store, kind, 2, 10)
    middle = before[len(before) // 2]
    everything = Subscriber(server, EVENTS, streamType=kind)
    resumed = Subscriber(server, EVENTS, streamType=kind, after=str(middle))
    ticks = Subscriber(server, EVENTS, streamType=kind, types=["Ticked"])
    try:
        marker = await ready(everything, resumed, ticks, store=store, stream_type=kind)
        written = await append_many(store, kind, 8, 250)
        assert len(written) == 2000
        for subscriber in (everything, resumed, ticks):
            await subscriber.until(lambda got: written[-1] in positions(got))

        for subscriber in (everything, resumed, ticks):
            got = positions(subscriber.received)
            assert len(set(got)) == len(got), "an event came twice"
            after_marker = got[got.index(marker) + 1 :]
            assert sorted(after_marker) == written, "an event is missing"
        resumed_got = positions(resumed.received)
        # Feed order: positions of different streams may interleave out of numeric order.
        assert sorted(p for p in resumed_got if p in before) == [p for p in before if p > middle]
        assert all(e["type"] == "Ticked" for e in ticks.received)
        for subscriber in (everything, resumed, ticks):
            assert in_version_order(subscriber.received)
    finally:
        for subscriber in (everything, resumed, ticks):
            await subscriber.close()


async def test_a_client_resumes_after_a_disconnect_with_no_gap_or_duplicate(
    server: Server, store: EventStore
) -> None:
    kind = f"Resume{uuid.uuid4().hex[:8]}"
    first_batch = await append_many(store, kind, 2, 20)
    first = Subscriber(server, EVENTS, streamType=kind, after="0")
    await first.until(lambda got: first_batch[-1] in positions(got))
    await first.close()
    last = positions(first.received)[-1]
    second_batch = await append_many(store, kind, 2, 20)
    second = Subscriber(server, EVENTS, streamType=kind, after=str(last))
    try:
        await second.until(lambda got: second_batch[-1] in positions(got))
        union = positions(first.received) + positions(second.received)
        assert union == sorted(first_batch + second_batch) or sorted(union) == sorted(
            first_batch + second_batch
        )
        assert len(set(union)) == len(union)
    finally:
        await second.close()


async def test_order_changed_pushes_each_state_as_the_order_moves(
    server: Server, client: GraphQLClient, e2e_database_url: str
) -> None:
    customer = await new_user(client)
    product = await new_product(client, 700)
    order = (await run(client, "createOrder", customerId=customer, shippingAddress=ADDRESS))[
        "streamId"
    ]
    watcher = Subscriber(server, ORDER_CHANGED, id=order)
    try:
        await run(client, "addLineItem", orderId=order, productId=product, quantity=2)
        await watcher.until(lambda got: any(o["version"] == 2 for o in got))
        await run(client, "placeOrder", orderId=order)
        await watcher.until(lambda got: got[-1]["status"] == "PLACED")
        engine = create_engine(e2e_database_url, pool_size=1)
        handler_store = EventStore(engine)
        from store.serialization import Aggregates

        aggregates = Aggregates()
        aggregates.register(orders.DECIDER)
        await CommandHandler(handler_store, aggregates).handle(
            orders.DECIDER, order, orders.ConfirmOrder(order_id=order)
        )
        await handler_store.close()
        await engine.dispose()
        await watcher.until(lambda got: got[-1]["status"] == "CONFIRMED")
        await run(client, "payOrder", orderId=order, amountCents=1400, method="card")
        await watcher.until(lambda got: got[-1]["status"] == "PAID")
        statuses = [o["status"] for o in watcher.received]
        assert statuses[-3:] == ["PLACED", "CONFIRMED", "PAID"]
        versions = [o["version"] for o in watcher.received]
        assert versions == sorted(versions) and len(versions) == len(set(versions))
    finally:
        await watcher.close()


async def raw_socket(server: Server) -> Any:
    return await websockets.connect(ws_url(server), subprotocols=["graphql-transport-ws"])


async def test_protocol_errors_close_with_the_protocol_codes_and_the_server_carries_on(
    server: Server, client: GraphQLClient
) -> None:
    async with await raw_socket(server) as socket:
        await socket.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "id": "1",
                    "payload": {"query": "subscription { events { position } }"},
                }
            )
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
        assert closed.value.rcvd.code == 4401  # unauthorized: no connection_init

    async with await raw_socket(server) as socket:
        await socket.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        await socket.send(json.dumps({"type": "no-such-type"}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
        assert closed.value.rcvd.code == 4400

    async with await raw_socket(server) as socket:
        await socket.send(json.dumps({"type": "connection_init"}))
        await socket.recv()
        subscribe = {
            "type": "subscribe",
            "id": "same",
            "payload": {"query": "subscription { events { position } }"},
        }
        await socket.send(json.dumps(subscribe))
        await socket.send(json.dumps(subscribe))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await socket.recv()
        assert closed.value.rcvd.code == 4409

    async with await raw_socket(server) as socket:
        await socket.send(json.dumps({"type": "connection_init"}))
        await socket.recv()
        await socket.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "id": "bad",
                    "payload": {"query": 'subscription { events(after: "nope") { position } }'},
                }
            )
        )
        reply = json.loads(await socket.recv())
        assert reply["type"] == "error"
        assert reply["payload"][0]["extensions"]["code"] == "VALIDATION_FAILED"

    # Still serving.
    assert (await client.execute("{ projections { name } }"))["projections"]


async def test_a_subscriber_on_one_process_gets_events_written_through_another(
    tmp_path: Path, e2e_database_url: str
) -> None:
    await across_processes(tmp_path, {"DATABASE_URL": e2e_database_url})


async def test_across_processes_through_redis(tmp_path: Path, e2e_database_url: str) -> None:
    """Against the real Redis on 127.0.0.1:6379, with the pinned redis-py."""
    await across_processes(
        tmp_path, {"DATABASE_URL": e2e_database_url, "BROADCAST_URL": "redis://127.0.0.1:6379"}
    )


async def across_processes(tmp_path: Path, env: dict[str, str]) -> None:
    # A long safety poll: only a ring can bring the event within a second.
    slow_poll = {**env, "CHRONICLE_SAFETY_POLL": "30"}
    a = start_server(slow_poll, tmp_path / "a.log")
    b = start_server(slow_poll, tmp_path / "b.log")
    from gql.transport.aiohttp import AIOHTTPTransport

    kind = "User"
    watcher = Subscriber(a, EVENTS, streamType=kind, types=["UserRegistered"])
    try:
        async with Client(transport=AIOHTTPTransport(url=b.graphql_url)) as session:
            writer = GraphQLClient(session)
            # The first registration proves the subscription is live; the second is timed.
            first = await run(
                writer, "registerUser", email=f"{uuid.uuid4().hex}@x.io", name="A", age=30
            )
            await watcher.until(
                lambda got: first["streamId"] in {e["streamId"] for e in got}, within=40
            )
            for _ in range(5):  # every ring, not a lucky one
                started = asyncio.get_running_loop().time()
                second = await run(
                    writer, "registerUser", email=f"{uuid.uuid4().hex}@x.io", name="B", age=30
                )
                await watcher.until(
                    lambda got, s=second["streamId"]: s in {e["streamId"] for e in got}, within=5
                )
                assert asyncio.get_running_loop().time() - started < 1.0
    finally:
        await watcher.close()
        a.stop()
        b.stop()


async def test_killing_the_listen_connection_loses_nothing(
    tmp_path: Path, e2e_database_url: str, store: EventStore
) -> None:
    server = start_server({"DATABASE_URL": e2e_database_url}, tmp_path / "listen.log")
    kind = f"Kill{uuid.uuid4().hex[:8]}"
    watcher = Subscriber(server, EVENTS, streamType=kind)
    try:
        await ready(watcher, store=store, stream_type=kind)
        first = await append_many(store, kind, 4, 25)
        admin = await asyncpg.connect(e2e_database_url)
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
        )
        await admin.close()
        assert killed >= 1
        second = await append_many(store, kind, 4, 25)
        await watcher.until(lambda got: set(first + second) <= set(positions(got)), within=30)
        got = [p for p in positions(watcher.received)]
        assert len(got) == len(set(got))
        async with asyncio.timeout(30):
            while "doorbell listener lost" not in server.output():  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # another process's log: nothing to await
    finally:
        await watcher.close()
        server.stop()
