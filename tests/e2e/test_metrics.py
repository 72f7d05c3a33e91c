"""Prometheus metrics end to end: a real server's /metrics after real commands, subscriptions
and a lagging read side, parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from gql import Client
from gql.transport.aiohttp import AIOHTTPTransport

from store.database import create_engine
from store.event_store import EventStore
from tests.e2e.conftest import GraphQLClient, Server, start_server, unique_email
from tests.e2e.live import EVENTS, Subscriber, append_many, ready
from tests.e2e.observed import UUID, Scrape, own_database
from tests.e2e.test_users import REGISTER

LABELS = {"command", "outcome", "stream_type", "method", "route", "status", "projection", "le"}
"""Every label name the service's own metrics may carry: each has a bounded set of values."""


async def test_commands_are_counted_by_type_and_outcome(
    server: Server, client: GraphQLClient
) -> None:
    before = Scrape(server.url)
    fields = {"email": unique_email(), "name": "Ada", "age": 30, "commandId": uuid.uuid4().hex}
    await client.execute(REGISTER, input=fields)
    await client.execute(REGISTER, input=fields)  # the same command again: replayed
    taken = {**fields, "commandId": uuid.uuid4().hex}
    assert await client.code(REGISTER, input=taken) == "DUPLICATE"
    too_young = {"email": unique_email(), "name": "Kid", "age": 5}
    assert await client.code(REGISTER, input=too_young) == "VALIDATION_FAILED"
    after = Scrape(server.url)

    def more(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    command = "RegisterUser"
    for outcome in ("ok", "replayed", "duplicate", "validation_failed"):
        assert more("chronicle_commands_total", command=command, outcome=outcome) == 1, outcome
    assert more("chronicle_command_duration_seconds_count", command=command) == 4
    assert more("chronicle_command_duration_seconds_sum", command=command) > 0
    # One user registered: its event, and the claim on its email in a stream of its own.
    assert more("chronicle_events_appended_total", stream_type="User") == 1
    assert more("chronicle_events_appended_total", stream_type="UniqueKey") == 1
    # Appends tried: the first (committed) and the duplicate's (refused by the claim).
    assert more("chronicle_append_duration_seconds_count") == 2
    graphql = {"method": "POST", "route": "/graphql", "status": "200"}
    assert more("chronicle_http_requests_total", **graphql) >= 4
    assert (
        more("chronicle_http_request_duration_seconds_count", method="POST", route="/graphql") >= 4
    )
    metrics = {"method": "GET", "route": "/metrics", "status": "200"}
    assert more("chronicle_http_requests_total", **metrics) == 1  # `before`, counted after it


async def test_the_runner_leader_and_each_read_model_are_shown(server: Server) -> None:
    scrape = Scrape(server.url)
    assert scrape.value("chronicle_runner_leader") == 1
    statuses = scrape.series("chronicle_projection_status")
    running = {dict(labels)["projection"] for labels, value in statuses.items() if value == 1}
    assert {"users", "user_summary", "products", "orders", "posts", "fulfilment"} <= running
    for labels in statuses:
        assert dict(labels)["status"] in {"running", "rebuilding", "failed"}
    assert set(scrape.by("chronicle_projection_position", "projection")) >= running
    assert scrape.value("chronicle_db_pool_connections_in_use") >= 0


async def test_live_subscribers_and_websockets_are_counted_while_open(
    server: Server, store: EventStore
) -> None:
    before = Scrape(server.url)
    kind = f"Gauged{uuid.uuid4().hex[:8]}"
    subscriber = Subscriber(server, EVENTS, streamType=kind)
    try:
        await ready(subscriber, store=store, stream_type=kind)
        during = Scrape(server.url)
        assert during.value("chronicle_live_subscribers") == (
            before.value("chronicle_live_subscribers") + 1
        )
        assert during.value("chronicle_websocket_connections") == (
            before.value("chronicle_websocket_connections") + 1
        )
    finally:
        await subscriber.close()
    for _ in range(100):
        after = Scrape(server.url)
        if after.value("chronicle_live_subscribers") == before.value("chronicle_live_subscribers"):
            break
        await asyncio.sleep(0.05)  # the server ends the subscription when it sees the close
    assert after.value("chronicle_live_subscribers") == before.value("chronicle_live_subscribers")
    assert after.value("chronicle_websocket_connections") == before.value(
        "chronicle_websocket_connections"
    )


async def test_the_exposition_parses_and_every_label_is_bounded(
    server: Server, client: GraphQLClient
) -> None:
    await client.execute(REGISTER, input={"email": unique_email(), "name": "Bo", "age": 40})
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        await http.get(f"/no/such/{uuid.uuid4()}")  # an unbounded path
        await http.request("PROPFIND", "/graphql")  # an unknown method
    scrape = Scrape(server.url)
    ours = [f for f in scrape.families if f.name.startswith("chronicle_")]
    names = {f.name for f in ours}
    assert {
        "chronicle_commands",
        "chronicle_command_duration_seconds",
        "chronicle_events_appended",
        "chronicle_append_duration_seconds",
        "chronicle_projection_position",
        "chronicle_projection_lag_events",
        "chronicle_projection_lag_seconds",
        "chronicle_projection_status",
        "chronicle_runner_leader",
        "chronicle_live_subscribers",
        "chronicle_live_buffered_events",
        "chronicle_subscriptions_fell_behind",
        "chronicle_doorbell_reconnects",
        "chronicle_db_pool_connections_in_use",
        "chronicle_http_requests",
        "chronicle_http_request_duration_seconds",
        "chronicle_websocket_connections",
    } <= names
    kinds = {f.name: f.type for f in ours}
    assert kinds["chronicle_commands"] == "counter"
    assert kinds["chronicle_command_duration_seconds"] == "histogram"
    assert kinds["chronicle_projection_lag_seconds"] == "gauge"
    for family in ours:
        for sample in family.samples:
            assert set(sample.labels) <= LABELS, sample
            for value in sample.labels.values():
                assert not UUID.search(value), sample
                assert len(value) <= 40, sample
    routes = set(scrape.by("chronicle_http_request_duration_seconds_count", "route"))
    assert "other" in routes and all(r == "other" or r.startswith("/") for r in routes)
    methods = {dict(labels)["method"] for labels in scrape.series("chronicle_http_requests_total")}
    assert "PROPFIND" not in methods and "other" in methods


@pytest.fixture(scope="module")
def lagging_server(
    server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    """A server that runs no projections: its read models lag behind whatever is appended."""
    with own_database(server_url, template_database) as url:
        log = tmp_path_factory.mktemp("lagging") / "serve.log"
        server = start_server({"DATABASE_URL": url, "CHRONICLE_RUN_PROJECTIONS": "false"}, log)
        try:
            yield server, url
        finally:
            server.stop()


async def test_projection_lag_gauges_equal_what_the_database_says(
    lagging_server: tuple[Server, str],
) -> None:
    server, url = lagging_server
    engine = create_engine(url, pool_size=2)
    store = EventStore(engine)
    try:
        caught_up = Scrape(server.url)
        assert set(caught_up.by("chronicle_projection_lag_events", "projection").values()) == {0}
        assert set(caught_up.by("chronicle_projection_lag_seconds", "projection").values()) == {0}
        written = await append_many(store, f"Lagged{uuid.uuid4().hex[:6]}", 2, 5)
        await asyncio.sleep(0.3)  # the oldest unapplied event ages
        started = time.time()
        scrape = Scrape(server.url)
        finished = time.time()
    finally:
        await store.close()
        await engine.dispose()
    connection = await asyncpg.connect(url)
    try:
        truth = {
            row["name"]: row
            for row in await connection.fetch(
                "SELECT c.name, c.position, (SELECT count(*) FROM events e WHERE "
                "(e.transaction_id, e.position) > (c.transaction_id, c.position)) AS lag, "
                "(SELECT extract(epoch FROM min(recorded_at)) FROM events) AS oldest "
                "FROM projection_checkpoints c WHERE c.name NOT LIKE '%:rebuild'"
            )
        }
    finally:
        await connection.close()
    assert len(written) == 10
    lag_events = scrape.by("chronicle_projection_lag_events", "projection")
    positions = scrape.by("chronicle_projection_position", "projection")
    lag_seconds = scrape.by("chronicle_projection_lag_seconds", "projection")
    assert set(lag_events) == set(truth)
    for name, row in truth.items():
        assert row["lag"] == 10  # nothing was applied: every checkpoint stands at the start
        assert lag_events[name] == row["lag"], name
        assert positions[name] == row["position"] == 0, name
        oldest = float(row["oldest"])
        assert started - oldest - 0.5 <= lag_seconds[name] <= finished - oldest + 0.5, name
        assert lag_seconds[name] >= 0.3, name
    assert scrape.value("chronicle_runner_leader") == 0
    assert not scrape.series("chronicle_projection_rebuild_progress_ratio")


REBUILD = "mutation($name: String!) { rebuildProjection(name: $name) { name status } }"


async def test_a_rebuild_shows_its_progress_and_status(
    lagging_server: tuple[Server, str],
) -> None:
    server, url = lagging_server
    engine = create_engine(url, pool_size=2)
    store = EventStore(engine)
    try:
        written = await append_many(store, f"Rebuilt{uuid.uuid4().hex[:6]}", 1, 4)
    finally:
        await store.close()
        await engine.dispose()
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            server.graphql_url, json={"query": REBUILD, "variables": {"name": "products"}}
        )
    assert answer.json()["data"]["rebuildProjection"]["status"] == "rebuilding", answer.text
    started = Scrape(server.url)
    assert started.by("chronicle_projection_rebuild_progress_ratio", "projection") == {
        "products": 0.0
    }
    assert started.value("chronicle_projection_status", projection="products", status="rebuilding")
    assert not started.value("chronicle_projection_status", projection="products", status="running")
    # No runner here: move the rebuild's checkpoint by hand to an event part of the way.
    connection = await asyncpg.connect(url)
    try:
        head = await connection.fetchval("SELECT max(position) FROM events")
        await connection.execute(
            "UPDATE projection_checkpoints c SET position = e.position, "
            "transaction_id = e.transaction_id FROM events e "
            "WHERE c.name = 'products:rebuild' AND e.position = $1",
            written[1],
        )
    finally:
        await connection.close()
    midway = Scrape(server.url)
    ratio = midway.value("chronicle_projection_rebuild_progress_ratio", projection="products")
    assert ratio == pytest.approx(written[1] / head)
    assert 0 < ratio < 1
    assert "products:rebuild" not in midway.by("chronicle_projection_position", "projection")


def test_metrics_can_be_turned_off(server_url: str, template_database: str, tmp_path: Path) -> None:
    with own_database(server_url, template_database) as url:
        server = start_server({"DATABASE_URL": url, "CHRONICLE_METRICS": "off"}, tmp_path / "log")
        try:
            assert httpx.get(f"{server.url}/metrics", timeout=5).status_code == 404
            assert httpx.get(f"{server.url}/health/live", timeout=5).status_code == 200
        finally:
            server.stop()


async def test_two_processes_sharing_a_multiprocess_folder_are_scraped_as_one(
    database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {"DATABASE_URL": database_url, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    first = start_server(env, tmp_path / "first.log")
    second = start_server(env, tmp_path / "second.log")
    try:
        transport = AIOHTTPTransport(url=first.graphql_url, ssl=False)
        async with Client(transport=transport, execute_timeout=30) as session:
            on_first = GraphQLClient(session)
            fields = {"email": unique_email(), "name": "Ada", "age": 30}
            await on_first.execute(REGISTER, input=fields)
        transport = AIOHTTPTransport(url=second.graphql_url, ssl=False)
        async with Client(transport=transport, execute_timeout=30) as session:
            on_second = GraphQLClient(session)
            assert await on_second.code(REGISTER, input=fields) == "DUPLICATE"
        subscriber = Subscriber(first, EVENTS, streamType="Nothing")
        try:
            await asyncio.sleep(0.5)  # the subscription registers on the first process
            for _ in range(60):
                scrape = Scrape(second.url)  # the other process answers for both
                if scrape.value("chronicle_live_subscribers") == 1:
                    break
                await asyncio.sleep(0.1)  # each process sets its gauges every second
        finally:
            await subscriber.close()
        ok = {"command": "RegisterUser", "outcome": "ok"}
        refused = {"command": "RegisterUser", "outcome": "duplicate"}
        assert scrape.value("chronicle_commands_total", **ok) == 1
        assert scrape.value("chronicle_commands_total", **refused) == 1
        assert scrape.value("chronicle_live_subscribers") == 1
        assert scrape.value("chronicle_websocket_connections") == 1
        assert scrape.value("chronicle_runner_leader") == 1  # one leader between them
        assert scrape.value("chronicle_events_appended_total", stream_type="User") == 1
        first.stop()
        after = Scrape(second.url)
    finally:
        first.stop()
        second.stop()
    # The stopped process's gauges leave with it; what it counted stays counted.
    assert after.value("chronicle_live_subscribers") == 0
    assert after.value("chronicle_websocket_connections") == 0
    assert after.value("chronicle_commands_total", **ok) == 1
    assert any(name.startswith("counter_") for name in os.listdir(folder))
