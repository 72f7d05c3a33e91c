"""End to end: `chronicle serve` in a real uvicorn process, called by a real GraphQL client."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from gql import Client, gql
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportQueryError
from playwright.sync_api import Browser

from store.database import create_engine
from store.event_store import EventStore
from tests.conftest import _admin, _with_database
from tests.e2e.browser import Screenshots, chromium

ALLOWED_ORIGIN = "https://app.example.com"
"""The one foreign origin the shared server lets open websockets."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(env: Mapping[str, str], log: Path, *, ready_within: float = 60) -> Server:
    """Start `chronicle serve` on a free port and wait until it answers /health."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environment.update(env)
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
        env=environment,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    handle.close()
    server = Server(url=f"http://127.0.0.1:{port}", process=process, log=log)
    deadline = time.monotonic() + ready_within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chronicle serve exited early:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # the server is another process: poll until it answers
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"chronicle serve did not answer in {ready_within}s:\n{server.output()}")


@pytest.fixture(scope="session")
def e2e_database_url(server_url: str, template_database: str) -> Iterator[str]:
    name = template_database.replace("_template", "_e2e")
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield _with_database(server_url, name)
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def server(e2e_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("server") / "serve.log"
    env = {
        "DATABASE_URL": e2e_database_url,
        "LOG_LEVEL": "info",
        "CHRONICLE_STALE_READ_TIMEOUT": "2",
        "CHRONICLE_WS_INIT_TIMEOUT": "1",
        "CHRONICLE_WS_KEEP_ALIVE": "0.5",
        "CHRONICLE_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
    }
    server = start_server(env, log)
    yield server
    server.stop()
    assert "Application shutdown complete" in server.output(), server.output()
    assert "Traceback" not in server.output(), server.output()


class GraphQLClient:
    """A gql client over HTTP with helpers for the assertions the tests make."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def execute(self, document: str, **variables: Any) -> dict[str, Any]:
        request = gql(document)
        request.variable_values = variables
        result = await self.session.execute(request)
        assert isinstance(result, dict)
        return result

    async def error(self, document: str, **variables: Any) -> dict[str, Any]:
        """The first GraphQL error the request is answered with."""
        with pytest.raises(TransportQueryError) as refused:
            await self.execute(document, **variables)
        errors = refused.value.errors
        assert errors, refused.value
        return dict(errors[0])

    async def code(self, document: str, **variables: Any) -> str:
        error = await self.error(document, **variables)
        return str((error.get("extensions") or {}).get("code"))


@pytest.fixture
async def client(server: Server) -> AsyncIterator[GraphQLClient]:
    transport = AIOHTTPTransport(url=server.graphql_url, ssl=False)
    async with Client(transport=transport, execute_timeout=30) as session:
        yield GraphQLClient(session)


@pytest.fixture
async def store(e2e_database_url: str) -> AsyncIterator[EventStore]:
    """A writer of its own on the server's database; its rings reach the server by NOTIFY."""
    engine = create_engine(e2e_database_url, pool_size=10)
    store = EventStore(engine)
    yield store
    await store.close()
    await engine.dispose()


@pytest.fixture
async def db(e2e_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the server's database, to check what was written."""
    connection = await asyncpg.connect(e2e_database_url)
    yield connection
    await connection.close()


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, for one module's browser tests (tests/e2e/browser.py)."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Screenshots:
    """This test's screenshots, in test-artifacts/screenshots/<test name>/, emptied."""
    return Screenshots(request.node.name)
