"""The live feed when things go wrong: a client that stops reading, a dropped LISTEN connection,
a Redis restart, a server shutting down. Each on a server process of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest
import websockets
from gql import Client
from gql.transport.aiohttp import AIOHTTPTransport

from store.event_store import EventStore
from tests.e2e.conftest import GraphQLClient, Server, free_port, start_server
from tests.e2e.live import (
    EVENTS,
    LEGACY_WS,
    TRANSPORT_WS,
    Subscriber,
    append_many,
    positions,
    raw_socket,
    ready,
    stalled_socket,
)
from tests.e2e.observed import Scrape
from tests.e2e.test_commands import run

WITH_DATA = """subscription($streamType: String) {
  events(streamType: $streamType) { position data }
}"""


def health(server: Server) -> dict[str, int]:
    return dict(httpx.get(f"{server.url}/health", timeout=5).json())


async def live_socket(socket: websockets.ClientConnection, store: EventStore, kind: str) -> int:
    """Write markers until the raw subscription on `socket` delivers one; its position."""
    for _ in range(30):
        (marker,) = await append_many(store, kind, 1, 1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                while True:
                    message = json.loads(await socket.recv())
                    if message["type"] not in ("next", "data"):
                        continue  # connection_ack, keep-alive
                    if int(message["payload"]["data"]["events"]["position"]) == marker:
                        return marker
    raise AssertionError("the subscription never went live")


async def latencies(
    subscriber: Subscriber, store: EventStore, kind: str, count: int
) -> list[float]:
    """Seconds from commit to arrival of `count` events written one at a time."""
    loop = asyncio.get_running_loop()
    seconds = []
    for _ in range(count):
        (position,) = await append_many(store, kind, 1, 1)
        committed = loop.time()
        await subscriber.until(lambda got, p=position: p in positions(got), within=10)
        seconds.append(loop.time() - committed)
    return seconds


async def test_a_subscriber_that_stops_reading_is_ended_with_where_to_resume(
    tmp_path: Path, e2e_database_url: str, store: EventStore
) -> None:
    buffer = 500
    server = start_server(
        {"DATABASE_URL": e2e_database_url, "CHRONICLE_SUBSCRIBER_BUFFER": str(buffer)},
        tmp_path / "slow.log",
    )
    kind = f"Slow{uuid.uuid4().hex[:8]}"
    normal = Subscriber(server, EVENTS, streamType=kind)
    slow = await stalled_socket(server)
    try:
        query = {"query": WITH_DATA, "variables": {"streamType": kind}}
        await slow.send(json.dumps({"type": "subscribe", "id": "s", "payload": query}))
        await ready(normal, store=store, stream_type=kind)
        marker = await live_socket(slow, store, kind)  # now it stops reading
        before = await latencies(normal, store, kind, 10)
        process = psutil.Process(server.process.pid)
        rss_before = process.memory_info().rss

        # More than the stalled connection's socket buffers (4 MB, tuned up by the kernel) and
        # its subscriber buffer hold, at a pace the normal subscriber (no data) keeps up with.
        flood = await append_many(store, kind, 2, 1500, padding=8000)
        await normal.until(lambda got: flood[-1] in positions(got), within=60)
        during = await latencies(normal, store, kind, 10)
        # The normal subscriber is not held up by the one that stopped reading.
        assert max(during) < max(1.0, 3 * max(before)), (before, during)
        state = health(server)
        assert state["liveSubscribers"] == 2
        assert state["bufferedEvents"] <= buffer  # the stalled buffer was freed, not grown
        assert process.memory_info().rss - rss_before < 64 * 2**20

        # When it reads again it finds what was sent, then the error that says where to resume.
        sent: list[int] = []
        async with asyncio.timeout(30):
            while (message := json.loads(await slow.recv()))["type"] == "next":
                if "errors" in message["payload"]:
                    break
                sent.append(int(message["payload"]["data"]["events"]["position"]))
        error = message["payload"]["errors"][0]
        assert error["extensions"]["code"] == "FELL_BEHIND"
        resume_after = error["extensions"]["resumeAfter"]
        assert resume_after == str(sent[-1] if sent else marker)
        assert "after" in error["message"]
        async with asyncio.timeout(10):
            assert json.loads(await slow.recv()) == {"id": "s", "type": "complete"}
        assert Scrape(server.url).value("chronicle_subscriptions_fell_behind_total") == 1

        # Resuming there gives the rest of the log exactly.
        resumed = Subscriber(server, EVENTS, streamType=kind, after=resume_after)
        await resumed.until(lambda got: set(positions(got)) | set(sent) >= set(flood), within=60)
        got = positions(resumed.received)
        assert len(got) == len(set(got)) and not set(got) & {marker, *sent}
        await resumed.close()
    finally:
        await normal.close()
        await slow.close()
        server.stop()


async def test_killing_the_listen_connection_loses_nothing(
    tmp_path: Path, e2e_database_url: str, store: EventStore
) -> None:
    # A long safety poll: what arrives within the test came by a ring on a new connection.
    server = start_server(
        {"DATABASE_URL": e2e_database_url, "CHRONICLE_SAFETY_POLL": "60"},
        tmp_path / "listen.log",
    )
    kind = f"Kill{uuid.uuid4().hex[:8]}"
    watcher = Subscriber(server, EVENTS, streamType=kind)
    try:
        await ready(watcher, store=store, stream_type=kind)
        first = await append_many(store, kind, 4, 25)
        # Kill the listening connections until this server says it lost its own: another
        # server on the database listens too, and this one's listener may not be connected
        # (or show its LISTEN) at the first try.
        admin = await asyncpg.connect(e2e_database_url)
        try:
            async with asyncio.timeout(30):
                while "doorbell listener lost" not in server.output():
                    await admin.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
                    )
                    await asyncio.sleep(0.2)  # the server's log, polled: no event to await
        finally:
            await admin.close()
        second = await append_many(store, kind, 4, 25)
        await watcher.until(lambda got: set(first + second) <= set(positions(got)), within=30)
        got = positions(watcher.received)
        assert len(got) == len(set(got))
        assert "doorbell listener lost" in server.output()
        assert Scrape(server.url).value("chronicle_doorbell_reconnects_total") >= 1
    finally:
        await watcher.close()
        server.stop()


class RedisServer:
    """A Redis server of the test's own (the machine's `redis-server`), to kill and restart."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "the tests need redis-server on PATH (Debian's redis-server package)"
        self.port = free_port()
        self.command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        self.command += ["--save", "", "--appendonly", "no"]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)  # another process starting up: poll its port
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.kill()


async def test_restarting_redis_loses_nothing(
    tmp_path: Path, e2e_database_url: str, redis: RedisServer
) -> None:
    env = {
        "DATABASE_URL": e2e_database_url,
        "BROADCAST_URL": redis.url,
        "CHRONICLE_SAFETY_POLL": "60",  # what arrives in time came by a ring through Redis
    }
    reader = start_server(env, tmp_path / "reader.log")
    writer = start_server(env, tmp_path / "writer.log")
    kind = "User"
    watcher = Subscriber(reader, EVENTS, streamType=kind, types=["UserRegistered"])
    try:
        async with Client(transport=AIOHTTPTransport(url=writer.graphql_url)) as session:
            client = GraphQLClient(session)

            async def register(count: int) -> set[str]:
                ids = set()
                for _ in range(count):
                    email = f"{uuid.uuid4().hex}@x.io"
                    ids.add(
                        (await run(client, "registerUser", email=email, name="R", age=30))[
                            "streamId"
                        ]
                    )
                return ids

            def streams(got: list[dict[str, Any]]) -> set[str]:
                return {e["streamId"] for e in got}

            first = await register(1)
            await watcher.until(lambda got: first <= streams(got), within=60)
            redis.kill()
            during = await register(5)  # their rings are lost with Redis
            redis.start()
            after = await register(5)
            await watcher.until(lambda got: first | during | after <= streams(got), within=30)
            got = [e["position"] for e in watcher.received]
            assert len(got) == len(set(got))
    finally:
        await watcher.close()
        reader.stop()
        writer.stop()
    assert "doorbell listener lost" in reader.output()


async def test_shutting_down_closes_subscriptions_cleanly_and_promptly(
    tmp_path: Path, e2e_database_url: str, store: EventStore
) -> None:
    server = start_server({"DATABASE_URL": e2e_database_url}, tmp_path / "shutdown.log")
    kind = f"Bye{uuid.uuid4().hex[:8]}"
    sockets = []
    try:
        for protocol, init, start in (
            (TRANSPORT_WS, "connection_init", "subscribe"),
            (LEGACY_WS, "connection_init", "start"),
        ):
            socket = await raw_socket(server, protocol)
            sockets.append(socket)
            await socket.send(json.dumps({"type": init}))
            query = {"query": EVENTS, "variables": {"streamType": kind}}
            await socket.send(json.dumps({"type": start, "id": "s", "payload": query}))
            await live_socket(socket, store, kind)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        for socket in sockets:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    while True:
                        await socket.recv()
            # A close frame saying "service restart": clients reconnect and resume with after.
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        # uvicorn re-raises the signal it handled once it has shut down cleanly.
        assert await asyncio.to_thread(server.process.wait, 10) == -signal.SIGTERM
        assert time.monotonic() - started < 3
    finally:
        for socket in sockets:
            await socket.close()
        server.stop()
    output = server.output()
    assert "Application shutdown complete" in output, output
    assert "Traceback" not in output and "ERROR" not in output, output
