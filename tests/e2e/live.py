"""Helpers of the subscription tests: websocket subscribers and concurrent writers."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Callable
from secrets import token_hex
from typing import Any

import websockets
from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from store.event_store import EventStore
from store.events import NewEvent, StreamAppend, StreamState
from tests.e2e.conftest import Server

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"

EVENTS = """subscription($after: Position, $streamType: String, $types: [String!]) {
  events(after: $after, streamType: $streamType, types: $types) { position streamId version type }
}"""


def ws_url(server: Server) -> str:
    return server.graphql_url.replace("http://", "ws://")


class Subscriber:
    """A gql websocket subscription collecting what it receives in a background task.

    `protocol` is graphql-transport-ws unless told otherwise; `error` holds the GraphQL
    error the subscription ended with, if any.
    """

    def __init__(
        self, server: Server, document: str, *, protocol: str = TRANSPORT_WS, **variables: Any
    ) -> None:
        self.received: list[dict[str, Any]] = []
        self.error: TransportQueryError | None = None
        self.arrived = asyncio.Event()
        self.ended = asyncio.Event()
        transport = WebsocketsTransport(url=ws_url(server), subprotocols=[protocol])
        self.transport = transport
        self._task = asyncio.create_task(self._run(transport, document, variables))

    @property
    def local_port(self) -> int:
        """The client's port of its connection (to tell which server process holds it)."""
        websocket = self.transport.adapter.websocket
        assert websocket is not None, "not connected"
        return int(websocket.local_address[1])

    async def _run(
        self, transport: WebsocketsTransport, document: str, variables: dict[str, Any]
    ) -> None:
        try:
            async with Client(transport=transport) as session:
                request = gql(document)
                request.variable_values = variables
                async for result in session.subscribe(request):
                    self.received.append(next(iter(result.values())))
                    self.arrived.set()
        except TransportQueryError as error:
            self.error = error
        finally:
            self.ended.set()
            self.arrived.set()

    async def until(
        self, condition: Callable[[list[dict[str, Any]]], bool], within: float = 30
    ) -> None:
        async with asyncio.timeout(within):
            while not condition(self.received):
                if self.ended.is_set():
                    raise AssertionError(f"the subscription ended: {self.error!r}")
                self.arrived.clear()
                await self.arrived.wait()

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def __aenter__(self) -> Subscriber:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


async def raw_socket(
    server: Server, protocol: str = TRANSPORT_WS, **options: Any
) -> websockets.ClientConnection:
    return await websockets.connect(ws_url(server), subprotocols=[protocol], **options)  # type: ignore[list-item]


async def stalled_socket(server: Server) -> websockets.ClientConnection:
    """A graphql-transport-ws connection whose client reads little: a tiny receive window and
    a queue of 2 messages, so the server's sends back up as soon as the client stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    connection = await websockets.connect(
        ws_url(server),
        sock=sock,
        subprotocols=[TRANSPORT_WS],  # type: ignore[list-item]
        max_queue=2,
        compression=None,  # what the server sends takes the room it says it takes
    )
    await connection.send(json.dumps({"type": "connection_init"}))
    assert json.loads(await connection.recv())["type"] == "connection_ack"
    return connection


async def append_many(
    store: EventStore, stream_type: str, writers: int, per_writer: int, *, padding: int = 0
) -> list[int]:
    """`writers` concurrent writers, each appending to a few streams of `stream_type`, events
    of `padding` random (incompressible) characters more than a few."""

    async def writer(w: int) -> list[int]:
        positions = []
        for i in range(per_writer):
            result = await store.append(
                [
                    StreamAppend(
                        stream_id=f"{stream_type}-{w}-{i % 4}",
                        stream_type=stream_type,
                        expected=StreamState.ANY,
                        events=[
                            NewEvent(
                                event_type="Ticked", data={"i": i, "pad": token_hex(padding // 2)}
                            )
                        ],
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
