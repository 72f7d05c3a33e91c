"""Least privilege (issue 13, item 9): `chronicle serve` runs as a role holding only what
`chronicle grants` gives it. Commands, the fulfilment process, queries and rebuilds of every
read model work; PostgreSQL itself refuses that role any UPDATE, DELETE or TRUNCATE of events
and any DDL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from gql import Client
from gql.transport.aiohttp import AIOHTTPTransport
from sqlalchemy.engine import make_url

from api.app import all_projectors
from tests.conftest import _admin, _with_database
from tests.e2e.conftest import GraphQLClient, Server, start_server, unique_email
from tests.e2e.test_commands import new_product, place, run
from tests.e2e.test_fulfilment import new_order
from tests.e2e.test_queries import ORDER, POST, PRODUCT, REBUILD
from tests.e2e.test_reviews import RATING, review
from tests.e2e.test_user_queries import SUMMARY, USER

PROJECTIONS = "{ projections { name status error } }"


@dataclass(frozen=True)
class Deployment:
    owner: str
    owner_url: str
    """The database as the schema owner, a plain login role that ran `chronicle migrate`."""
    role: str
    role_url: str
    """The same database as the serving role."""


def chronicle(
    *args: str, database_url: str, migrate_on_start: bool = True
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "warning",
        "CHRONICLE_MIGRATE_ON_START": str(migrate_on_start).lower(),
    }
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def login(url: str, role: str, password: str) -> str:
    return make_url(url).set(username=role, password=password).render_as_string(False)


@pytest.fixture(scope="module")
def deployment(server_url: str) -> Iterator[Deployment]:
    """As the README deploys it: an owner role with a database of its own, migrated by
    `chronicle migrate` as that owner, and a serving role. All three dropped afterwards (the
    serving role's grants live in the database, so once it is dropped the role holds nothing)."""
    suffix = uuid.uuid4().hex[:10]
    name = f"chronicle_test_{suffix}_least"
    owner, role = f"chronicle_owner_{suffix}", f"chronicle_app_{suffix}"
    password = uuid.uuid4().hex
    database = _with_database(server_url, name)
    try:
        asyncio.run(
            _admin(
                server_url,
                f"CREATE ROLE {owner} LOGIN PASSWORD '{password}'",
                f"CREATE ROLE {role} LOGIN PASSWORD '{password}'",
                f'CREATE DATABASE "{name}" OWNER {owner}',
            )
        )
        deployed = Deployment(
            owner=owner,
            owner_url=login(database, owner, password),
            role=role,
            role_url=login(database, role, password),
        )
        migrated = chronicle("migrate", database_url=deployed.owner_url)
        assert migrated.returncode == 0, migrated.stderr
        yield deployed
    finally:
        try:
            asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            asyncio.run(
                _admin(server_url, f"DROP ROLE IF EXISTS {role}", f"DROP ROLE IF EXISTS {owner}")
            )


async def role_grants(deployment: Deployment) -> set[tuple[str, str]]:
    connection = await asyncpg.connect(deployment.owner_url)
    try:
        rows = await connection.fetch(
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee = $1",
            deployment.role,
        )
    finally:
        await connection.close()
    return {(row["table_name"], row["privilege_type"]) for row in rows}


@pytest.fixture(scope="module")
def granted(deployment: Deployment) -> Deployment:
    """The role with `chronicle grants --apply`'s privileges, applied twice: the second run
    changes nothing and prints the same statements."""
    printed = chronicle("grants", "--role", deployment.role, database_url=deployment.owner_url)
    assert printed.returncode == 0, printed.stderr
    applied = []
    for _ in range(2):
        done = chronicle(
            "grants", "--role", deployment.role, "--apply", database_url=deployment.owner_url
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == printed.stdout
        applied.append(asyncio.run(role_grants(deployment)))
    assert applied[0] == applied[1]
    assert {p for t, p in applied[0] if t == "events"} == {"SELECT", "INSERT"}
    return deployment


@pytest.fixture(scope="module")
def server(granted: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("least-privilege") / "serve.log"
    env = {
        "DATABASE_URL": granted.role_url,
        "CHRONICLE_MIGRATE_ON_START": "false",
        "LOG_LEVEL": "info",
        "CHRONICLE_STALE_READ_TIMEOUT": "5",
    }
    server = start_server(env, log)
    yield server
    server.stop()
    assert "Application shutdown complete" in server.output(), server.output()
    assert "Traceback" not in server.output(), server.output()
    assert "permission denied" not in server.output(), server.output()


async def as_role(deployment: Deployment) -> asyncpg.Connection:
    connection = await asyncpg.connect(deployment.role_url)
    assert await connection.fetchval("SELECT current_user") == deployment.role
    return connection


async def test_the_service_serves_and_rebuilds_as_the_role(
    server: Server, granted: Deployment
) -> None:
    async with Client(
        transport=AIOHTTPTransport(url=server.graphql_url, ssl=False), execute_timeout=30
    ) as session:
        client = GraphQLClient(session)
        email = unique_email()
        user = await run(client, "registerUser", email=email, name="Ada", age=36)
        customer = user["streamId"]
        lamp = await new_product(client, 1500, stock=5)
        order = await new_order(client, customer, (lamp, 2))
        placed = await place(client, order)
        assert placed["fulfilment"]["status"] == "CONFIRMED"  # the process ran as the role
        await run(client, "payOrder", orderId=order, amountCents=3000, method="card")
        await run(client, "shipOrder", orderId=order, carrier="UPS", trackingNumber="1Z")
        delivered = await run(client, "deliverOrder", orderId=order, signedBy="Ada")
        post = (await run(client, "createPost", authorId=customer, message="Hi"))["streamId"]
        commented = await run(client, "addComment", postId=post, authorId=customer, text="Me")
        reviewed = await review(client, productId=lamp, userId=customer, rating=4, text="Good")
        last = str(max(int(r["position"]) for r in (delivered, commented, reviewed)))

        async def read_models() -> tuple[object, ...]:
            read_order = (await client.execute(ORDER, id=order, min=last))["order"]
            read_user = (await client.execute(USER, id=customer, min=last))["user"]
            summary = (await client.execute(SUMMARY, min=last))["userSummary"]
            read_product = (await client.execute(PRODUCT, id=lamp, min=last))["product"]
            rating = (await client.execute(RATING, id=lamp, min=last))["product"]["rating"]
            read_post = (await client.execute(POST, id=post, min=last))["post"]
            return read_order, read_user, summary, read_product, rating, read_post

        before = await read_models()
        read_order, read_user, summary, read_product, rating, read_post = before
        assert (read_order["status"], read_order["totalCents"]) == ("DELIVERED", 3000)
        assert (read_user["email"], summary["totalUsers"]) == (email, 1)
        assert (read_product["stockOnHand"], read_product["stockReserved"]) == (3, 0)
        assert rating == {"average": 4.0, "count": 1}
        assert [c["text"] for c in read_post["comments"]] == ["Me"]

        for projector in all_projectors():
            started = (await client.execute(REBUILD, name=projector.name))["rebuildProjection"]
            assert started["name"] == projector.name
            await until_running(client, projector.name)
        assert await read_models() == before

    # The swapped-in tables are the owner's, with the same grants as before.
    connection = await asyncpg.connect(granted.owner_url)
    try:
        owners = await connection.fetch(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        )
        leftovers = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE '%\\_\\_rebuild'"
        )
    finally:
        await connection.close()
    assert [row["tableowner"] for row in owners] == [granted.owner]
    assert leftovers == []
    grants = await role_grants(granted)
    for projector in all_projectors():
        for table in projector.tables:
            assert {p for t, p in grants if t == table} == {
                "SELECT",
                "INSERT",
                "UPDATE",
                "DELETE",
                "TRUNCATE",
            }, table


async def until_running(client: GraphQLClient, name: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        (status,) = [
            p for p in (await client.execute(PROJECTIONS))["projections"] if p["name"] == name
        ]
        if status["status"] == "running":
            return
        assert status["status"] == "rebuilding" and time.monotonic() < deadline, status
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("UPDATE events SET data = '{}'", "permission denied for table events"),
        ("DELETE FROM events", "permission denied for table events"),
        ("TRUNCATE events", "permission denied for table events"),
        ("DELETE FROM streams", "permission denied for table streams"),
        ("UPDATE commands SET version = 0", "permission denied for table commands"),
        ("DELETE FROM snapshots", "permission denied for table snapshots"),
        ("DROP TABLE events", "must be owner of table events"),
        ("ALTER TABLE events DISABLE TRIGGER events_append_only", "must be owner of table events"),
        ("DROP TABLE users_view", "must be owner of table users_view"),
        ("CREATE TABLE mine (id int)", "permission denied for schema public"),
        ("SELECT create_rebuild_copy('events')", "may not rebuild events"),
        ("SELECT swap_in_rebuild_copy('streams')", "may not rebuild streams"),
    ],
)
async def test_postgres_refuses_the_role_anything_else(
    granted: Deployment, statement: str, refusal: str
) -> None:
    connection = await as_role(granted)
    try:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError, match=refusal):
            await connection.execute(statement)
    finally:
        await connection.close()


async def test_every_table_the_migrations_create_is_granted(granted: Deployment) -> None:
    """A table added by a migration but missing from store/grants.py (or from a projector's
    `tables`) would leave the role unable to serve."""
    connection = await asyncpg.connect(granted.owner_url)
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
    finally:
        await connection.close()
    assert {row["tablename"] for row in tables} == {t for t, _ in await role_grants(granted)}


def test_verify_runs_as_the_role(granted: Deployment) -> None:
    """Its scratch tables are temporary: the role creates them in its own session."""
    verified = chronicle(
        "projections", "verify", database_url=granted.role_url, migrate_on_start=False
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "DRIFT" not in verified.stdout


def test_serving_as_the_role_with_migrations_on_start_says_what_to_do(
    granted: Deployment, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match="may not migrate") as refused:
        start_server({"DATABASE_URL": granted.role_url}, tmp_path / "serve.log")
    assert "CHRONICLE_MIGRATE_ON_START=false" in str(refused.value)


def test_grants_refuse_a_missing_role_the_owner_and_a_superuser(
    granted: Deployment, server_url: str
) -> None:
    missing = chronicle(
        "grants", "--role", "no_such_role_x", "--apply", database_url=granted.owner_url
    )
    assert missing.returncode != 0
    assert "no role 'no_such_role_x'" in missing.stderr
    for mighty in (granted.owner, make_url(server_url).username or "postgres"):
        refused = chronicle("grants", "--role", mighty, "--apply", database_url=granted.owner_url)
        assert refused.returncode != 0
        assert "superuser or owns the tables" in refused.stderr
