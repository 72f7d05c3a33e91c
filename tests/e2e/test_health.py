"""Health for load balancers and orchestrators, end to end: /health/live and /health/ready on
real servers, ready and not (a read model lagging, a schema behind the code)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from store.database import create_engine
from store.event_store import EventStore
from store.migrations import alembic_config, head_revision
from tests.e2e.conftest import Server, start_server
from tests.e2e.live import append_many
from tests.e2e.observed import own_database


def get(server: Server, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", timeout=10)


def test_live_answers_without_the_database_and_ready_says_why(server: Server) -> None:
    live = get(server, "/health/live")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    ready = get(server, "/health/ready")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    checks = body["checks"]
    assert checks["database"] == {"ok": True}
    assert checks["schema"] == {"ok": True, "revision": head_revision(), "head": head_revision()}
    assert checks["projections"]["ok"] is True
    assert checks["projections"]["maxLag"] == 1000
    read_models = checks["projections"]["readModels"]
    assert {"users", "products", "orders", "posts"} <= set(read_models)
    for each in read_models.values():
        assert each["ok"] is True and each["lag"] <= 1000 and each["status"] == "running"
    assert get(server, "/health").json()["status"] == "ok"  # as it was


@pytest.fixture(scope="module")
def strict_lagging_server(
    server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    """A server that runs no projections and allows no lag at all."""
    with own_database(server_url, template_database) as url:
        log = tmp_path_factory.mktemp("strict") / "serve.log"
        env = {
            "DATABASE_URL": url,
            "CHRONICLE_RUN_PROJECTIONS": "false",
            "CHRONICLE_READY_MAX_LAG": "0",
        }
        server = start_server(env, log)
        try:
            yield server, url
        finally:
            server.stop()


async def _append(url: str, events: int) -> None:
    engine = create_engine(url, pool_size=1)
    store = EventStore(engine)
    try:
        await append_many(store, f"Unread{uuid.uuid4().hex[:6]}", 1, events)
    finally:
        await store.close()
        await engine.dispose()


def test_ready_is_503_while_a_read_model_lags_beyond_the_most_allowed(
    strict_lagging_server: tuple[Server, str],
) -> None:
    server, url = strict_lagging_server
    assert get(server, "/health/ready").status_code == 200  # nothing written yet: no lag
    asyncio.run(_append(url, 3))
    ready = get(server, "/health/ready")
    assert ready.status_code == 503, ready.text
    body = ready.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["schema"]["ok"] is True
    projections = body["checks"]["projections"]
    assert projections["ok"] is False and projections["maxLag"] == 0
    assert projections["readModels"]["users"] == {
        "ok": False,
        "status": "running",
        "position": 0,
        "lag": 3,
    }
    assert get(server, "/health/live").status_code == 200  # alive all the same


def _previous(revision: str) -> str:
    from alembic.script import ScriptDirectory

    down = ScriptDirectory.from_config(alembic_config()).get_revision(revision).down_revision
    assert isinstance(down, str)
    return down


def test_ready_is_503_while_the_schema_is_behind_the_code(
    server_url: str, template_database: str, tmp_path: Path
) -> None:
    head = head_revision()
    assert head is not None
    older = _previous(head)

    async def set_revision(url: str) -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute("UPDATE alembic_version SET version_num = $1", older)
        finally:
            await connection.close()

    with own_database(server_url, template_database) as url:
        asyncio.run(set_revision(url))
        env = {"DATABASE_URL": url, "CHRONICLE_MIGRATE_ON_START": "false"}
        server = start_server(env, tmp_path / "serve.log")
        try:
            ready = get(server, "/health/ready")
            assert get(server, "/health/live").status_code == 200
        finally:
            server.stop()
    assert ready.status_code == 503, ready.text
    body = ready.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["schema"] == {"ok": False, "revision": older, "head": head}
