"""Both websocket protocols on the wire: handshakes, keep-alive, timeouts, origins, bad messages.

Raw `websockets` clients, so each test controls exactly what is sent. The shared server gives
clients 1 s to send `connection_init`, sends legacy keep-alives every 0.5 s, and lets
ALLOWED_ORIGIN open websockets from a browser.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import websockets

from store.event_store import EventStore
from store.events import FEED_START
from tests.e2e.conftest import ALLOWED_ORIGIN, GraphQLClient, Server
from tests.e2e.live import LEGACY_WS, TRANSPORT_WS, append_many, raw_socket, ws_url

EVENTS_OF = 'subscription { events(streamType: "%s") { position } }'


async def send(socket: websockets.ClientConnection, message: dict[str, Any]) -> None:
    await socket.send(json.dumps(message))


async def receive(socket: websockets.ClientConnection, within: float = 10) -> dict[str, Any]:
    """The next message that is not a legacy keep-alive."""
    async with asyncio.timeout(within):
        while (message := json.loads(await socket.recv()))["type"] == "ka":
            pass
    return dict(message)


async def close_code(socket: websockets.ClientConnection, within: float = 10) -> int:
    """Read until the server closes the connection; its close code."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(within):
            while True:
                await socket.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def error_code(reply: dict[str, Any]) -> str:
    """The code of the GraphQL error a reply carries: an `error` message (a list of errors, or
    one in the legacy protocol) or a result with `errors` (raised once the operation ran)."""
    assert reply["type"] in ("error", "next", "data"), reply
    payload = reply["payload"]
    error = payload[0] if isinstance(payload, list) else payload.get("errors", [payload])[0]
    return str(error["extensions"]["code"])


async def still_serving(client: GraphQLClient) -> None:
    assert (await client.execute("{ projections { name } }"))["projections"]


# ---------------------------------------------------------------- graphql-transport-ws


async def initialised(server: Server, protocol: str = TRANSPORT_WS) -> websockets.ClientConnection:
    """A socket of `protocol` whose `connection_init` was acknowledged."""
    socket = await raw_socket(server, protocol)
    await send(socket, {"type": "connection_init"})
    assert (await receive(socket))["type"] == "connection_ack"
    return socket


async def test_subscribing_before_connection_init_closes_4401(
    server: Server, client: GraphQLClient
) -> None:
    async with await raw_socket(server, TRANSPORT_WS) as socket:
        subscribe = {"query": EVENTS_OF % "Any"}
        await send(socket, {"type": "subscribe", "id": "1", "payload": subscribe})
        assert await close_code(socket) == 4401
    await still_serving(client)


async def test_no_connection_init_in_time_closes_4408(server: Server) -> None:
    async with await raw_socket(server, TRANSPORT_WS) as socket:
        assert await close_code(socket, within=5) == 4408


async def test_an_unknown_message_type_closes_4400(server: Server, client: GraphQLClient) -> None:
    async with await initialised(server) as socket:
        await send(socket, {"type": "no-such-type"})
        assert await close_code(socket) == 4400
    async with await initialised(server) as socket:
        await socket.send("this is not JSON")
        assert await close_code(socket) == 4400
    await still_serving(client)


async def test_a_duplicate_operation_id_closes_4409(server: Server, client: GraphQLClient) -> None:
    async with await initialised(server) as socket:
        subscribe = {"type": "subscribe", "id": "same", "payload": {"query": EVENTS_OF % "Any"}}
        await send(socket, subscribe)
        await send(socket, subscribe)
        assert await close_code(socket) == 4409
    await still_serving(client)


@pytest.mark.parametrize("after", ['"nope"', '"-3"', '"999999999999"'])
async def test_a_malformed_or_unknown_after_is_a_validation_error_and_the_socket_stays_open(
    server: Server, store: EventStore, after: str
) -> None:
    kind = f"Proto{uuid.uuid4().hex[:8]}"
    async with await initialised(server) as socket:
        query = f"subscription {{ events(after: {after}) {{ position }} }}"
        await send(socket, {"type": "subscribe", "id": "bad", "payload": {"query": query}})
        reply = await receive(socket)
        assert reply["id"] == "bad"
        assert error_code(reply) == "VALIDATION_FAILED"
        # The same connection goes on serving a good subscription.
        await send(
            socket, {"type": "subscribe", "id": "good", "payload": {"query": EVENTS_OF % kind}}
        )
        written = await keep_writing_until_received(socket, store, kind)
        assert written


async def keep_writing_until_received(
    socket: websockets.ClientConnection, store: EventStore, kind: str, data: str = "next"
) -> list[int]:
    """Write an event of `kind` now and then until the socket delivers one (a subscription
    from now only sees what is written after the server registered it)."""
    written: list[int] = []

    async def write() -> None:
        while True:
            written.extend(await append_many(store, kind, 1, 1))
            await asyncio.sleep(0.2)  # pacing a writer, not waiting for a condition

    writer = asyncio.create_task(write())
    try:
        while (message := await receive(socket))["type"] != data:
            pass
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    # The event may come from an append whose result the writer had not recorded yet.
    delivered = await store.read_feed(FEED_START, stream_type=kind, limit=10_000)
    of_kind = [e.position for e in delivered]
    assert int(message["payload"]["data"]["events"]["position"]) in of_kind
    return written


async def test_ping_is_answered_with_pong(server: Server) -> None:
    async with await initialised(server) as socket:
        await send(socket, {"type": "ping"})
        assert (await receive(socket))["type"] == "pong"


# ---------------------------------------------------------------- legacy graphql-ws


async def test_legacy_protocol_delivers_events_and_keeps_the_connection_alive(
    server: Server, store: EventStore
) -> None:
    kind = f"Legacy{uuid.uuid4().hex[:8]}"
    async with await initialised(server, LEGACY_WS) as socket:
        async with asyncio.timeout(5):
            while json.loads(await socket.recv())["type"] != "ka":
                pass
        await send(socket, {"type": "start", "id": "1", "payload": {"query": EVENTS_OF % kind}})
        await keep_writing_until_received(socket, store, kind, data="data")
        await send(socket, {"type": "stop", "id": "1"})
        # Events pushed before the stop arrived may still be on their way, and keep-alives.
        while (reply := await receive(socket))["type"] != "complete":
            assert reply["type"] in {"data", "ka"}, reply


async def test_legacy_start_before_connection_init_closes_4401(server: Server) -> None:
    async with await raw_socket(server, LEGACY_WS) as socket:
        await send(socket, {"type": "start", "id": "1", "payload": {"query": EVENTS_OF % "Any"}})
        assert await close_code(socket) == 4401


async def test_legacy_unknown_message_type_is_answered_with_an_error(
    server: Server, store: EventStore
) -> None:
    kind = f"Legacy{uuid.uuid4().hex[:8]}"
    async with await initialised(server, LEGACY_WS) as socket:
        await send(socket, {"type": "no-such-type", "id": "7"})
        reply = await receive(socket)
        assert (reply["type"], reply["id"]) == ("error", "7")
        assert reply["payload"]["extensions"]["code"] == "BAD_MESSAGE"
        assert "no-such-type" in reply["payload"]["message"]
        await send(socket, {"type": "start", "id": "1", "payload": {"query": EVENTS_OF % kind}})
        await keep_writing_until_received(socket, store, kind, data="data")


async def test_legacy_malformed_after_is_a_validation_error(server: Server) -> None:
    async with await initialised(server, LEGACY_WS) as socket:
        query = 'subscription { events(after: "nope") { position } }'
        await send(socket, {"type": "start", "id": "bad", "payload": {"query": query}})
        reply = await receive(socket)
        assert reply["id"] == "bad"
        assert error_code(reply) == "VALIDATION_FAILED"


async def test_legacy_start_of_a_query_is_a_validation_error_not_a_fault(server: Server) -> None:
    mark = len(server.output())
    async with await initialised(server, LEGACY_WS) as socket:
        await send(
            socket, {"type": "start", "id": "q", "payload": {"query": "{ projections { name } }"}}
        )
        reply = await receive(socket)
        assert reply["id"] == "q"
        assert error_code(reply) == "VALIDATION_FAILED"
    logged = server.output()[mark:]
    assert "ERROR" not in logged and "Traceback" not in logged, logged


# ---------------------------------------------------------------- origins


async def test_browsers_of_other_origins_are_refused_unless_allowed(server: Server) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(
            ws_url(server),
            subprotocols=[TRANSPORT_WS],
            origin="https://evil.example.org",  # type: ignore[list-item,arg-type]
        )
    assert refused.value.response.status_code == 403
    for origin in (ALLOWED_ORIGIN, None):  # the allowed origin, and a client that is no browser
        async with websockets.connect(
            ws_url(server),
            subprotocols=[TRANSPORT_WS],
            origin=origin,  # type: ignore[list-item,arg-type]
        ) as socket:
            await send(socket, {"type": "connection_init"})
            assert (await receive(socket))["type"] == "connection_ack"
