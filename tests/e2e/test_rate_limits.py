"""Rate limits end to end: a `chronicle serve` with `CHRONICLE_RATE_LIMIT=5/minute`, its
mutations over HTTP and its subscription starts over both websocket protocols; two processes
sharing their counters in Redis; and a Redis outage, which lets requests through."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import _admin, _with_database
from tests.e2e.conftest import Server, start_server
from tests.e2e.live import LEGACY_WS, TRANSPORT_WS, raw_socket
from tests.e2e.test_auth import (
    ME,
    SECRET,
    SUBSCRIBE,
    UPDATE,
    code_of,
    count_events,
    done,
    post,
    register,
    token,
)
from tests.e2e.test_live_resilience import RedisServer

RATE = 5
SHARED_REDIS = "redis://127.0.0.1:6379/2"


def limited_env(database_url: str, rate: int = RATE) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "info",
        "CHRONICLE_JWT_SECRET": SECRET,
        "CHRONICLE_JWT_ISSUER": "https://id.example.com",
        "CHRONICLE_JWT_AUDIENCE": "chronicle",
        "CHRONICLE_RATE_LIMIT": f"{rate}/minute",
    }


@pytest.fixture(scope="module")
def database(server_url: str, template_database: str) -> Iterator[str]:
    """A database of this module's own."""
    name = template_database.replace("_template", "_rate")
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield _with_database(server_url, name)
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def limited(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server counting in its own memory."""
    server = start_server(limited_env(database), tmp_path_factory.mktemp("rate") / "serve.log")
    try:
        yield server
    finally:
        server.stop()
    assert "Traceback" not in server.output(), server.output()


def subject() -> str:
    return token(f"sub-{uuid.uuid4().hex[:8]}")


def rename(server: Server, bearer: str, user_id: str, name: str) -> httpx.Response:
    return post(server, UPDATE, bearer, input={"userId": user_id, "name": name})


def retry_after(response: httpx.Response) -> float:
    """The wait a RATE_LIMITED answer gives, checked for its shape."""
    assert response.status_code == 200, response.text  # a GraphQL error, not an HTTP one
    body = response.json()
    assert body["data"] is None and code_of(response) == "RATE_LIMITED", body
    wait = body["errors"][0]["extensions"]["retryAfter"]
    assert isinstance(wait, int | float) and 0 < wait <= 60, wait
    return float(wait)


async def test_a_subjects_sixth_mutation_in_a_minute_is_refused_and_writes_nothing(
    limited: Server, database: str
) -> None:
    ada = subject()
    user_id = done(register(limited, ada))["streamId"]
    for n in range(RATE - 1):
        done(rename(limited, ada, user_id, f"Ada {n}"))
    before = await count_events(database)
    refused = rename(limited, ada, user_id, "Ada, once too often")
    header = int(refused.headers["retry-after"])  # whole seconds, rounded up
    assert retry_after(refused) <= header <= 60
    assert await count_events(database) == before

    # Another subject has a budget of its own; queries are not limited at all.
    done(register(limited, subject()))
    for _ in range(3 * RATE):
        assert "errors" not in post(limited, ME, ada).json()


async def test_a_request_counts_once_however_many_mutations_it_holds(limited: Server) -> None:
    ada = subject()
    user_id = done(register(limited, ada))["streamId"]
    twice = """mutation($id: ID!) {
      first: updateUser(input: {userId: $id, name: "One"}) { version }
      second: updateUser(input: {userId: $id, name: "Two"}) { version }
    }"""
    for _ in range(RATE - 1):
        assert "errors" not in post(limited, twice, ada, id=user_id).json()
    retry_after(post(limited, twice, ada, id=user_id))


async def test_anonymous_callers_are_counted_by_their_address(limited: Server) -> None:
    # Refused as they are, anonymous mutations still spend the address's budget.
    fields = {"email": f"{uuid.uuid4().hex}@example.com", "name": "Anon", "age": 30}
    register_anonymously = """mutation($input: RegisterUserInput!) {
      registerUser(input: $input) { streamId }
    }"""
    for _ in range(RATE):
        assert code_of(post(limited, register_anonymously, input=fields)) == "UNAUTHENTICATED"
    retry_after(post(limited, register_anonymously, input=fields))


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_subscription_starts_are_limited_over_websockets(
    limited: Server, protocol: str
) -> None:
    socket = await raw_socket(limited, protocol)
    try:
        payload = {"Authorization": f"Bearer {subject()}"}
        await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        async with asyncio.timeout(10):
            while json.loads(await socket.recv())["type"] != "connection_ack":
                pass
        start = "subscribe" if protocol == TRANSPORT_WS else "start"
        for n in range(1, RATE + 2):
            message = {"type": start, "id": str(n), "payload": {"query": SUBSCRIBE}}
            await socket.send(json.dumps(message))
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while not any(m.get("id") == str(RATE + 1) for m in received):
                received.append(json.loads(await socket.recv()))
        answers = [m for m in received if "id" in m]
        # The first five are live and quiet; the sixth is refused with the code and the wait.
        assert {m["id"] for m in answers} == {str(RATE + 1)}, answers
        errors = answers[0]["payload"]
        errors = errors if isinstance(errors, list) else errors["errors"]
        assert errors[0]["extensions"]["code"] == "RATE_LIMITED", answers
        assert 0 < errors[0]["extensions"]["retryAfter"] <= 60
    finally:
        await socket.close()


# ---------------------------------------------------------------- Redis


async def test_two_processes_share_one_budget_in_redis(database: str, tmp_path: Path) -> None:
    prefix = f"chronicle-test-{uuid.uuid4().hex}"
    env = {
        **limited_env(database),
        "BROADCAST_URL": SHARED_REDIS,
        "CHRONICLE_RATE_LIMIT_PREFIX": prefix,
    }
    a = start_server(env, tmp_path / "a.log")
    b = start_server(env, tmp_path / "b.log")
    counters = redis.Redis.from_url(SHARED_REDIS)
    try:
        ada = subject()
        user_id = done(register(a, ada))["streamId"]
        answers = [rename((b, a)[n % 2], ada, user_id, f"Ada {n}") for n in range(2 * RATE)]
        allowed = [r for r in answers if "errors" not in r.json()]
        refused = [r for r in answers if "errors" in r.json()]
        # One budget for both processes: five in all, not five each.
        assert len(allowed) == RATE - 1 and len(refused) == RATE + 1
        for response in refused:
            retry_after(response)
        assert any(counters.scan_iter(match=f"{prefix}:*"))
    finally:
        a.stop()
        b.stop()
        for key in counters.scan_iter(match=f"{prefix}:*"):
            counters.delete(key)
        counters.close()
    for server in (a, b):
        assert "counted in Redis" in server.output() and "Traceback" not in server.output()


async def test_a_redis_outage_lets_requests_through(database: str, tmp_path: Path) -> None:
    own = RedisServer()
    own.start()
    env = {**limited_env(database, rate=2), "BROADCAST_URL": own.url}
    server = start_server(env, tmp_path / "serve.log")
    try:
        ada = subject()
        user_id = done(register(server, ada))["streamId"]
        done(rename(server, ada, user_id, "Ada"))
        retry_after(rename(server, ada, user_id, "Ada, over the limit"))
        own.kill()
        for n in range(3):  # fail open: counted nowhere, refused never
            done(rename(server, ada, user_id, f"Ada {n}"))
        assert "counters cannot be reached" in server.output()

        # Redis back (empty): once it is asked again, the limit holds again.
        own.start()
        deadline = time.monotonic() + 30
        while "errors" not in (answer := rename(server, ada, user_id, "Ada again")).json():
            assert time.monotonic() < deadline, "the limit never came back"
            await asyncio.sleep(0.2)  # the limiter leaves a failed Redis alone for a while
        retry_after(answer)
        assert "limiting resumes" in server.output()
    finally:
        server.stop()
        own.kill()
