"""Subscriptions over HTTP, end to end: `chronicle serve` streaming `multipart/mixed` (the protocol
Apollo Client and urql speak) to Apollo Client's HttpLink in node, and to a reader of our own
where the test must choose when to read. The same guarantees as over websockets: live events,
`after` resumes with exactly the log's events, filters, a bounded buffer per subscriber
(FELL_BEHIND with where to resume), a clean end at shutdown and at the token's expiry; and the
same gates: the Authorization header, trusted documents and the rate of subscription starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.trusted import document_hash
from store.event_store import EventStore
from store.events import FEED_START, NewEvent, StreamAppend, StreamState
from tests.e2e.conftest import Server, start_server
from tests.e2e.live import append_many, in_version_order, positions, ready
from tests.e2e.node_clients import ApolloSubscriber, multipart_parts, streamed
from tests.e2e.test_auth import SECRET, token

EVENTS = """subscription Events($after: Position, $streamType: String, $types: [String!]) {
  events(after: $after, streamType: $streamType, types: $types) { position streamId version type }
}
"""
WITH_DATA = """subscription($streamType: String) {
  events(streamType: $streamType) { position streamId version type data }
}"""
BUFFER = 300  # more than the bursts the other tests write at once
RATE = 4


def admin() -> dict[str, str]:
    """The headers of an admin of its own: its own budget of subscription starts."""
    return {"Authorization": f"Bearer {token(f'admin-{uuid.uuid4().hex[:8]}', 'admin')}"}


@pytest.fixture(scope="module")
def streams(e2e_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that requires tokens, runs EVENTS as its one trusted document, lets a subscriber
    fall BUFFER events behind and each caller start RATE subscriptions a minute."""
    folder = tmp_path_factory.mktemp("http_subscriptions")
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({document_hash(EVENTS): EVENTS}))
    env = {
        "DATABASE_URL": e2e_database_url,
        "CHRONICLE_JWT_SECRET": SECRET,
        "CHRONICLE_JWT_ISSUER": "https://id.example.com",
        "CHRONICLE_JWT_AUDIENCE": "chronicle",
        "CHRONICLE_SUBSCRIBER_BUFFER": str(BUFFER),
        "CHRONICLE_RATE_LIMIT": f"{RATE}/minute",
        "CHRONICLE_TRUSTED_DOCUMENTS": str(manifest),
        "CHRONICLE_RUN_PROJECTIONS": "false",  # the shared server runs them on this database
    }
    server = start_server(env, folder / "serve.log")
    try:
        yield server
    finally:
        server.stop()
    assert "Traceback" not in server.output(), server.output()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def feed_after(store: EventStore, kind: str, position: int) -> list[int]:
    """The positions of `kind`'s events after `position`, in the store's feed order."""
    feed = [e.position for e in await store.read_feed(FEED_START, limit=100_000, stream_type=kind)]
    return feed[feed.index(position) + 1 :] if position else feed


async def append_other_type(store: EventStore, kind: str, count: int) -> None:
    for n in range(count):
        await store.append(
            [
                StreamAppend(
                    stream_id=f"{kind}-other-{n}",
                    stream_type=kind,
                    expected=StreamState.NO_STREAM,
                    events=[NewEvent(event_type="Tocked", data={})],
                )
            ]
        )


async def payloads(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Each `payload` of a multipart subscription response; heartbeats (`{}`) skipped."""
    async for part in multipart_parts(response):
        if part:
            assert set(part) <= {"payload", "errors"}, part
            yield part


# ---------------------------------------------------------------- Apollo Client


async def test_live_events_reach_apollo_client_over_http(
    streams: Server, store: EventStore
) -> None:
    kind = f"HttpLive{uuid.uuid4().hex[:8]}"
    async with ApolloSubscriber(
        streams.graphql_url, EVENTS, {"streamType": kind}, admin()
    ) as subscriber:
        marker = await ready(subscriber, store=store, stream_type=kind)  # type: ignore[arg-type]
        written = await append_many(store, kind, 4, 50)
        await subscriber.until(lambda got: written[-1] in positions(got))
        got = positions(subscriber.received)
        assert got[got.index(marker) + 1 :] == await feed_after(store, kind, marker)
        assert sorted(got[got.index(marker) + 1 :]) == written
        assert in_version_order(subscriber.received)
        assert subscriber.error is None


async def test_after_resumes_with_exactly_the_logs_events_after_it(
    streams: Server, store: EventStore
) -> None:
    kind = f"HttpAfter{uuid.uuid4().hex[:8]}"
    before = await append_many(store, kind, 3, 20)
    await append_other_type(store, kind, 5)
    feed = await feed_after(store, kind, 0)
    middle = feed[len(feed) // 2]
    variables = {"after": str(middle), "streamType": kind, "types": ["Ticked"]}
    async with ApolloSubscriber(streams.graphql_url, EVENTS, variables, admin()) as resumed:
        later = await append_many(store, kind, 2, 20)
        await resumed.until(lambda got: set(later) <= set(positions(got)))
        expected = [
            e.position
            for e in await store.read_feed(
                await store.checkpoint_at(middle) or FEED_START,
                limit=100_000,
                stream_type=kind,
                types=["Ticked"],
            )
        ]
        assert positions(resumed.received) == expected
        assert {e["type"] for e in resumed.received} == {"Ticked"}
        assert set(before) & set(expected), "the catch-up read the store"


async def test_the_authorization_header_is_verified_and_required(
    streams: Server, http: httpx.AsyncClient
) -> None:
    # Anonymous, with the trusted document (Apollo sends its own printing of a document):
    # admitted, then refused by the subscription, in the stream.
    by_id = {"documentId": f"sha256:{document_hash(EVENTS)}", "variables": {}}
    async with streamed(http, streams.graphql_url, by_id) as response:
        assert response.status_code == 200
        parts = [part async for part in payloads(response)]
    assert parts[0]["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", parts
    assert "data" not in parts[0]["payload"] or parts[0]["payload"]["data"] is None
    bad = {"Authorization": "Bearer nonsense"}
    async with ApolloSubscriber(streams.graphql_url, EVENTS, headers=bad) as refused:
        await refused.finished()
    assert refused.error is not None and refused.error["statusCode"] == 401, refused.error
    assert json.loads(refused.error["bodyText"])["errors"][0]["extensions"]["code"] == (
        "UNAUTHENTICATED"
    )


async def test_the_stream_ends_when_the_token_expires(streams: Server) -> None:
    short = {"Authorization": f"Bearer {token('short-lived', 'admin', ttl=3)}"}
    started = time.monotonic()
    async with ApolloSubscriber(streams.graphql_url, EVENTS, headers=short) as subscriber:
        await subscriber.finished(within=20)
    assert 2 <= time.monotonic() - started < 15
    assert subscriber.error is not None, "the stream must say why it ended"
    assert subscriber.error["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# ---------------------------------------------------------------- at the test's own pace


async def test_trusted_documents_gate_http_subscriptions(
    streams: Server, http: httpx.AsyncClient
) -> None:
    user = {"Authorization": f"Bearer {token('http-subscriber')}"}
    by_id = {"documentId": f"sha256:{document_hash(EVENTS)}", "variables": {}}
    async with streamed(http, streams.graphql_url, by_id, user) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("multipart/mixed")
    as_text = {"query": "subscription { events { position } }"}
    async with streamed(http, streams.graphql_url, as_text, user) as response:
        body = json.loads(await response.aread())
        assert body["errors"][0]["extensions"]["code"] == "TRUSTED_DOCUMENT_REQUIRED", body


async def test_subscription_starts_over_http_are_rate_limited(
    streams: Server, store: EventStore, http: httpx.AsyncClient
) -> None:
    kind = f"HttpRate{uuid.uuid4().hex[:8]}"
    await append_many(store, kind, 1, 1)
    caller = admin()
    payload = {"query": EVENTS, "variables": {"after": "0", "streamType": kind}}
    async with contextlib.AsyncExitStack() as opened:
        for _ in range(RATE):  # each started: its catch-up sends the event
            response = await opened.enter_async_context(
                streamed(http, streams.graphql_url, payload, caller)
            )
            first = await anext(payloads(response))
            assert first["payload"]["data"]["events"]["streamId"].startswith(kind), first
        async with streamed(http, streams.graphql_url, payload, caller) as response:
            assert response.status_code == 200
            refused = [part async for part in payloads(response)]
    (error,) = refused[0]["payload"]["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED", refused
    assert 0 < error["extensions"]["retryAfter"] <= 60


async def test_a_reader_that_falls_behind_gets_fell_behind_and_resumes_exactly(
    streams: Server, store: EventStore
) -> None:
    kind = f"HttpSlow{uuid.uuid4().hex[:8]}"
    # A receive buffer of its own size (64 KiB) is not tuned up by the kernel (to 32 MiB here),
    # and still reads fast once the test reads again.
    small_window = httpx.AsyncHTTPTransport(
        socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)]
    )
    caller = admin()
    payload = {"query": WITH_DATA, "variables": {"streamType": kind}}
    async with (
        httpx.AsyncClient(transport=small_window, timeout=60) as slow_client,
        streamed(slow_client, streams.graphql_url, payload, caller) as response,
    ):
        reading = payloads(response)
        marker = None
        for _ in range(30):  # live once a marker written now arrives
            (marker,) = await append_many(store, kind, 1, 1)
            try:
                async with asyncio.timeout(2):
                    while (await anext(reading))["payload"]["data"]["events"]["position"] != str(
                        marker
                    ):
                        pass
                break
            except TimeoutError:
                continue
        assert marker is not None
        # Now it stops reading: more than its socket buffers (some 4 MiB, the server's send
        # buffer) and its subscriber buffer hold.
        flood = await append_many(store, kind, 2, 800, padding=8000)
        sent: list[int] = []
        async with asyncio.timeout(60):
            async for part in reading:
                if "errors" in part["payload"]:
                    break
                sent.append(int(part["payload"]["data"]["events"]["position"]))
            else:
                raise AssertionError("the stream ended without an error")
            assert [p async for p in reading] == [], "nothing after the error but the close"
    error = part["payload"]["errors"][0]
    assert error["extensions"]["code"] == "FELL_BEHIND", error
    resume_after = error["extensions"]["resumeAfter"]
    assert resume_after == str(sent[-1] if sent else marker)
    assert len(sent) < len(flood), "it fell behind before the end"

    variables = {"after": resume_after, "streamType": kind}
    async with ApolloSubscriber(streams.graphql_url, EVENTS, variables, caller) as resumed:
        await resumed.until(lambda got: set(flood) <= set(sent) | set(positions(got)), within=60)
        assert positions(resumed.received) == await feed_after(store, kind, int(resume_after))


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_ends_the_stream_cleanly(
    e2e_database_url: str, store: EventStore, tmp_path: Path, workers: int
) -> None:
    env = {"DATABASE_URL": e2e_database_url, "CHRONICLE_WORKERS": str(workers)}
    server = start_server(env, tmp_path / "serve.log")
    kind = f"HttpStop{uuid.uuid4().hex[:8]}"
    try:
        async with ApolloSubscriber(server.graphql_url, EVENTS, {"streamType": kind}) as subscriber:
            await ready(subscriber, store=store, stream_type=kind)  # type: ignore[arg-type]
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            await subscriber.finished(within=15)
            assert subscriber.completed and subscriber.error is None, subscriber.error
            # uvicorn raises the signal it caught again once it has shut down.
            exited = await asyncio.to_thread(server.process.wait, 15)
            assert exited in (0, -signal.SIGTERM), exited
            assert time.monotonic() - started < 5, "ended by the drain, not the graceful timeout"
    finally:
        server.stop()
    output = server.output()
    assert "Application shutdown complete" in output, output
    for marker in ("Traceback", "Cancel", " ERROR "):
        assert marker not in output, output
