"""Websocket compression (permessage-deflate) is negotiated only when CHRONICLE_WS_COMPRESSION
is on. Every browser offers it; a compressed connection holds some 40 KB more of zlib state
(benchmarks/fanout.py --deflate), and each frame is compressed for its connection alone.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from store.event_store import EventStore
from tests.e2e.conftest import Server, start_server
from tests.e2e.live import append_many, raw_socket

DOCUMENT = "subscription($t: String) { events(streamType: $t) { position data } }"


async def negotiate_and_push(server: Server, store: EventStore) -> str | None:
    """One connection offering permessage-deflate, as browsers do, and a subscription that
    gets every event written once it is live, each whole (20 kB of data), in the log's order;
    the extensions the server accepted."""
    kind = f"Deflate{uuid.uuid4().hex[:8]}"
    socket = await raw_socket(server)  # `websockets` offers permessage-deflate by default
    try:
        assert socket.request is not None and socket.response is not None
        offered = socket.request.headers.get("Sec-WebSocket-Extensions", "")
        assert "permessage-deflate" in offered
        accepted = socket.response.headers.get("Sec-WebSocket-Extensions")
        await socket.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        payload = {"query": DOCUMENT, "variables": {"t": kind}}
        await socket.send(json.dumps({"type": "subscribe", "id": "1", "payload": payload}))

        pushed: list[dict[str, Any]] = []

        async def next_push() -> dict[str, Any]:
            while (message := json.loads(await socket.recv()))["type"] != "next":
                pass
            assert message["id"] == "1" and "errors" not in message["payload"], message
            return dict(message["payload"]["data"]["events"])

        # Live once a marker written now arrives (a subscription without `after` starts now).
        for _ in range(30):
            (marker,) = await append_many(store, kind, 1, 1)
            try:
                async with asyncio.timeout(2):
                    while int((await next_push())["position"]) != marker:
                        pass
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("the subscription never went live")
        written = await append_many(store, kind, 2, 5, padding=20_000)
        async with asyncio.timeout(20):
            while len(pushed) < len(written):
                pushed.append(await next_push())
        assert all(len(event["data"]["pad"]) == 20_000 for event in pushed)
        assert sorted(int(event["position"]) for event in pushed) == sorted(written)
        return accepted
    finally:
        await socket.close()


async def test_compression_is_off_by_default_though_the_client_offers_it(
    server: Server, store: EventStore
) -> None:
    assert await negotiate_and_push(server, store) is None


async def test_compression_on_is_negotiated_and_every_push_arrives_whole(
    tmp_path: Path, e2e_database_url: str, store: EventStore
) -> None:
    server = start_server(
        {
            "DATABASE_URL": e2e_database_url,
            "CHRONICLE_WS_COMPRESSION": "true",
            "CHRONICLE_RUN_PROJECTIONS": "false",  # the shared server runs them on this database
        },
        tmp_path / "deflate.log",
    )
    try:
        accepted = await negotiate_and_push(server, store)
    finally:
        server.stop()
    assert accepted is not None and accepted.startswith("permessage-deflate")
    assert "Traceback" not in server.output(), server.output()
