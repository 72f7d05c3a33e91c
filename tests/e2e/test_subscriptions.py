"""Subscriptions end to end: real uvicorn, the gql client over websockets, both protocols."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from gql import Client
from gql.transport.aiohttp import AIOHTTPTransport

from store.event_store import EventStore
from store.events import FEED_START
from tests.e2e.conftest import GraphQLClient, Server, start_server
from tests.e2e.live import (
    EVENTS,
    LEGACY_WS,
    TRANSPORT_WS,
    Subscriber,
    append_many,
    in_version_order,
    positions,
    ready,
)
from tests.e2e.test_commands import ADDRESS, new_product, new_user, run

ORDER_CHANGED = (
    "subscription($id: ID!) { orderChanged(orderId: $id) { status version totalCents } }"
)
POST_CHANGED = (
    "subscription($id: ID!) { postChanged(postId: $id) { version message likeCount "
    "comments { text } } }"
)


async def test_three_subscribers_each_get_exactly_their_events_during_concurrent_writes(
    server: Server, store: EventStore
) -> None:
    kind = f"Live{uuid.uuid4().hex[:8]}"
    before = await append_many(store, kind, 2, 10)
    middle = before[len(before) // 2]
    everything = Subscriber(server, EVENTS, streamType=kind)
    resumed = Subscriber(server, EVENTS, streamType=kind, after=str(middle))
    ticks = Subscriber(server, EVENTS, protocol=LEGACY_WS, streamType=kind, types=["Ticked"])
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
        # `after` is a place in the feed, which is in commit order: two writers commit their
        # positions out of numeric order, so "after middle" is read off the store's feed.
        feed = [
            e.position for e in await store.read_feed(FEED_START, limit=10_000, stream_type=kind)
        ]
        after_middle = [p for p in feed[feed.index(middle) + 1 :] if p in before]
        assert [p for p in resumed_got if p in before] == after_middle
        assert all(e["type"] == "Ticked" for e in ticks.received)
        for subscriber in (everything, resumed, ticks):
            assert in_version_order(subscriber.received)
    finally:
        for subscriber in (everything, resumed, ticks):
            await subscriber.close()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_client_resumes_mid_stream_with_no_gap_or_duplicate(
    server: Server, store: EventStore, db: asyncpg.Connection, protocol: str
) -> None:
    kind = f"Resume{uuid.uuid4().hex[:8]}"
    first = Subscriber(server, EVENTS, protocol=protocol, streamType=kind, after="0")
    writing = asyncio.create_task(append_many(store, kind, 4, 100))
    await first.until(lambda got: len(got) >= 100)
    await first.close()  # disconnects while the writers go on
    last = positions(first.received)[-1]
    second = Subscriber(server, EVENTS, protocol=protocol, streamType=kind, after=str(last))
    try:
        written = await writing
        await second.until(lambda got: set(written) <= set(positions(first.received + got)))
        log = [
            row["position"]
            for row in await db.fetch(
                "SELECT position FROM events WHERE stream_type = $1 "
                "ORDER BY transaction_id, position",
                kind,
            )
        ]
        # Both parts together are exactly the store's log, in its order.
        assert positions(first.received) + positions(second.received) == log
    finally:
        await second.close()


async def test_order_changed_pushes_each_state_as_the_order_moves(
    server: Server, client: GraphQLClient, db: asyncpg.Connection
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
        # Hold the lock each append takes on the product's stream, so the fulfilment process
        # cannot reserve yet and the order stays PLACED until we let go.
        async with db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", product)
            await run(client, "placeOrder", orderId=order)
            await watcher.until(lambda got: got[-1]["status"] == "PLACED")
        await watcher.until(lambda got: got[-1]["status"] == "CONFIRMED")
        await run(client, "payOrder", orderId=order, amountCents=1400, method="card")
        await watcher.until(lambda got: got[-1]["status"] == "PAID")
        statuses = [o["status"] for o in watcher.received]
        assert statuses[-3:] == ["PLACED", "CONFIRMED", "PAID"]
        versions = [o["version"] for o in watcher.received]
        assert versions == sorted(versions) and len(versions) == len(set(versions))
    finally:
        await watcher.close()


async def test_post_changed_pushes_likes_comments_and_edits(
    server: Server, client: GraphQLClient
) -> None:
    author, fan = await new_user(client), await new_user(client)
    post = (await run(client, "createPost", authorId=author, message="Hello"))["streamId"]
    watcher = Subscriber(server, POST_CHANGED, protocol=LEGACY_WS, id=post)
    try:
        await run(client, "likePost", postId=post, userId=fan)
        await watcher.until(lambda got: bool(got) and got[-1]["likeCount"] == 1)
        await run(client, "addComment", postId=post, authorId=fan, text="Nice")
        await watcher.until(lambda got: got[-1]["comments"] == [{"text": "Nice"}])
        await run(client, "editPost", postId=post, message="Hello, world")
        await watcher.until(lambda got: got[-1]["message"] == "Hello, world")
        versions = [p["version"] for p in watcher.received]
        assert versions == sorted(set(versions)), "an older state came after a newer one"
    finally:
        await watcher.close()


async def test_a_subscriber_on_one_process_gets_events_written_through_another(
    tmp_path: Path, e2e_database_url: str
) -> None:
    await across_processes(tmp_path, {"DATABASE_URL": e2e_database_url})


async def test_across_processes_through_redis(tmp_path: Path, e2e_database_url: str) -> None:
    """Against the real Redis on 127.0.0.1:6379, with the newest redis-py the pins allow."""
    await across_processes(
        tmp_path, {"DATABASE_URL": e2e_database_url, "BROADCAST_URL": "redis://127.0.0.1:6379"}
    )


async def across_processes(tmp_path: Path, env: dict[str, str]) -> None:
    # A long safety poll: only a ring can bring the event within a second.
    slow_poll = {**env, "CHRONICLE_SAFETY_POLL": "30"}
    a = start_server(slow_poll, tmp_path / "a.log")
    b = start_server(slow_poll, tmp_path / "b.log")
    watcher = Subscriber(a, EVENTS, streamType="User", types=["UserRegistered"])
    try:
        async with Client(transport=AIOHTTPTransport(url=b.graphql_url)) as session:
            writer = GraphQLClient(session)
            # The first registration proves the subscription is live; the others are timed.
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
