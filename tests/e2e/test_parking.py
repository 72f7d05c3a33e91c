"""Parked events end to end (issue 15, item 5): `chronicle serve` with
`CHRONICLE_ON_PROJECTION_ERROR=park` and tokens required; parkedEvents, retryParked and
skipParked for admins only, and `chronicle projections parked`, `retry` and `skip` beside it.

An event is poisoned as the products read model meets it: a CHECK constraint on
`products_view` refuses the row it would write, until the test drops it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from api.auth import mint
from tests.conftest import _admin, _with_database
from tests.e2e.conftest import Server, start_server

SECRET = "an-e2e-secret-for-parked-events-long-enough"
ADMIN = mint(SECRET, "root", ["admin"], 600)
USER = mint(SECRET, "ada", ["user"], 600)

PARKED = """query($projection: String) {
  parkedEvents(projection: $projection) {
    projection position streamId eventType error attempts parkedAt
  }
}"""
RETRY = """mutation($projection: String!) {
  retryParked(projection: $projection) { name status parked lag }
}"""
SKIP = """mutation($projection: String!, $position: Position!) {
  skipParked(projection: $projection, position: $position) { name status parked }
}"""
PROJECTIONS = "{ projections { name status lag parked } }"
ADD_PRODUCT = """mutation($sku: String!, $name: String!) {
  addProduct(input: {sku: $sku, name: $name, priceCents: 1999, initialStock: 10}) {
    streamId position
  }
}"""
RESTOCK = """mutation($id: ID!) {
  restockProduct(input: {productId: $id, quantity: 5}) { position }
}"""
PRODUCT = "query($id: ID!) { product(id: $id) { name stockOnHand } }"


@pytest.fixture(scope="module")
def parking(
    server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    """A server of its own that parks, requires tokens, and tries an event twice."""
    name = template_database.replace("_template", "_parking")
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    url = _with_database(server_url, name)
    env = {
        "DATABASE_URL": url,
        "LOG_LEVEL": "info",
        "CHRONICLE_JWT_SECRET": SECRET,
        "CHRONICLE_ON_PROJECTION_ERROR": "park",
        "CHRONICLE_PROJECTION_RETRIES": "1",
    }
    server = start_server(env, tmp_path_factory.mktemp("parking") / "serve.log")
    try:
        yield server, url
    finally:
        server.stop()
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def post(server: Server, document: str, bearer: str | None, **variables: Any) -> dict[str, Any]:
    headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
    response = httpx.post(
        server.graphql_url,
        json={"query": document, "variables": variables},
        headers=headers,
        timeout=30,
    )
    body: dict[str, Any] = response.json()
    return body


def call(server: Server, document: str, **variables: Any) -> dict[str, Any]:
    body = post(server, document, ADMIN, **variables)
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def code(body: dict[str, Any]) -> str:
    return str(body["errors"][0]["extensions"]["code"])


def chronicle(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "projections", *args],
        env={**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "warning"},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


class Poison:
    """A CHECK constraint that refuses the products read model any product named Poisoned*."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = f"poison_{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> Poison:
        asyncio.run(
            execute(
                self.url,
                f"ALTER TABLE products_view ADD CONSTRAINT {self.name} "
                "CHECK (name NOT LIKE 'Poisoned%') NOT VALID",
            )
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.lift()

    def lift(self) -> None:
        asyncio.run(
            execute(self.url, f"ALTER TABLE products_view DROP CONSTRAINT IF EXISTS {self.name}")
        )


def products(server: Server) -> dict[str, Any]:
    (status,) = [p for p in call(server, PROJECTIONS)["projections"] if p["name"] == "products"]
    return status


def caught_up(server: Server, parked: int, within: float = 30) -> dict[str, Any]:
    """The products read model once it has taken the whole log with `parked` events parked."""
    deadline = time.monotonic() + within
    while True:
        status = products(server)
        if (status["lag"], status["parked"]) == (0, parked) or time.monotonic() > deadline:
            return status
        time.sleep(0.1)  # the runner is another process: poll it


def parked_gauge(server: Server, projection: str = "products") -> float:
    """chronicle_projection_parked_events{projection} as /metrics shows it."""
    scraped = httpx.get(f"{server.url}/metrics", timeout=30).text
    wanted = f'chronicle_projection_parked_events{{projection="{projection}"}} '
    (line,) = [line for line in scraped.splitlines() if line.startswith(wanted)]
    return float(line.removeprefix(wanted))


def add_product(server: Server, name: str) -> str:
    sku = f"P-{uuid.uuid4().hex[:10]}"
    product_id: str = call(server, ADD_PRODUCT, sku=sku, name=name)["addProduct"]["streamId"]
    return product_id


def parked_at(server: Server, stream_id: str) -> str:
    """The position of the first event of `stream_id` the products read model parked."""
    parked = call(server, PARKED, projection="products")["parkedEvents"]
    position: str = next(p["position"] for p in parked if p["streamId"] == stream_id)
    return position


def test_admins_list_retry_and_skip_parked_events_over_graphql(
    parking: tuple[Server, str],
) -> None:
    server, url = parking
    with Poison(url) as poison:
        lamp = add_product(server, "Poisoned lamp")
        restocked = call(server, RESTOCK, id=lamp)["restockProduct"]["position"]
        chair = add_product(server, "Chair")
        status = caught_up(server, parked=2)
        assert (status["status"], status["lag"], status["parked"]) == ("running", 0, 2)
        assert call(server, PRODUCT, id=chair)["product"]["name"] == "Chair"  # went on
        assert parked_gauge(server) == 2.0

        parked = call(server, PARKED, projection="products")["parkedEvents"]
        assert [(p["streamId"], p["eventType"], p["attempts"]) for p in parked] == [
            (lamp, "ProductAdded", 2),
            (lamp, "ProductRestocked", 0),
        ]
        added = parked[0]["position"]
        assert int(added) < int(restocked) == int(parked[1]["position"])
        assert "IntegrityError" in parked[0]["error"] and "SELECT" not in parked[0]["error"]
        assert parked[1]["error"] == f"held behind position {added} of the same stream"
        assert call(server, PARKED)["parkedEvents"] == parked
        assert call(server, PARKED, projection="users")["parkedEvents"] == []

        # Not fixed yet: a retry keeps them, one more attempt counted.
        retried = call(server, RETRY, projection="products")["retryParked"]
        assert (retried["name"], retried["status"], retried["parked"]) == ("products", "running", 2)
        assert call(server, PARKED, projection="products")["parkedEvents"][0]["attempts"] == 3
        poison.lift()

        retried = call(server, RETRY, projection="products")["retryParked"]
        assert retried["parked"] == 0
        assert parked_gauge(server) == 0.0
        assert call(server, PARKED)["parkedEvents"] == []
        assert call(server, PRODUCT, id=lamp)["product"] == {
            "name": "Poisoned lamp",
            "stockOnHand": 15,
        }

    with Poison(url):
        desk = add_product(server, "Poisoned desk")
        caught_up(server, parked=1)
        desk_added = parked_at(server, desk)
        skipped = call(server, SKIP, projection="products", position=desk_added)["skipParked"]
        assert (skipped["name"], skipped["parked"]) == ("products", 0)
    assert call(server, PRODUCT, id=desk)["product"] is None  # skipped: never applied


@pytest.mark.parametrize(
    ("bearer", "refusal"),
    [(None, "UNAUTHENTICATED"), (USER, "FORBIDDEN")],
    ids=["anonymous", "user"],
)
def test_only_admins_may_see_retry_or_skip_parked_events(
    parking: tuple[Server, str], bearer: str | None, refusal: str
) -> None:
    server, _ = parking
    assert code(post(server, PARKED, bearer)) == refusal
    assert code(post(server, RETRY, bearer, projection="products")) == refusal
    assert code(post(server, SKIP, bearer, projection="products", position="1")) == refusal


def test_an_unknown_projection_or_position_is_not_found(parking: tuple[Server, str]) -> None:
    server, _ = parking
    assert code(post(server, PARKED, ADMIN, projection="nothing")) == "NOT_FOUND"
    assert code(post(server, RETRY, ADMIN, projection="nothing")) == "NOT_FOUND"
    assert code(post(server, RETRY, ADMIN, projection="fulfilment")) == "NOT_FOUND"
    assert code(post(server, SKIP, ADMIN, projection="products", position="999999")) == "NOT_FOUND"
    assert code(post(server, SKIP, ADMIN, projection="nothing", position="1")) == "NOT_FOUND"


def test_the_cli_lists_retries_and_skips_beside_the_server(parking: tuple[Server, str]) -> None:
    server, url = parking
    with Poison(url) as poison:
        lamp = add_product(server, "Poisoned lamp")
        caught_up(server, parked=1)
        added = parked_at(server, lamp)

        listed = chronicle(url, "parked")
        assert listed.returncode == 0, listed.stderr
        assert f"position {added}" in listed.stdout and lamp in listed.stdout
        assert "ProductAdded" in listed.stdout and "2 attempts" in listed.stdout
        assert "IntegrityError" in listed.stdout

        failed_again = chronicle(url, "retry", "products")
        assert failed_again.returncode == 1, failed_again.stderr
        assert "products: 0 applied, 1 still parked" in failed_again.stdout

        poison.lift()
        retried = chronicle(url, "retry", "products")
        assert retried.returncode == 0, retried.stderr
        assert "products: 1 applied, 0 still parked" in retried.stdout
        assert chronicle(url, "parked", "products").stdout.strip() == "no parked events"
        assert call(server, PRODUCT, id=lamp)["product"]["name"] == "Poisoned lamp"

    with Poison(url):
        desk = add_product(server, "Poisoned desk")
        caught_up(server, parked=1)
        desk_added = parked_at(server, desk)
        skipped = chronicle(url, "skip", "products", desk_added)
        assert skipped.returncode == 0, skipped.stderr
        assert f"skipped the event parked at position {desk_added}" in skipped.stdout
        assert products(server)["parked"] == 0

    missing = chronicle(url, "skip", "products", desk_added)
    assert missing.returncode == 2 and "no event parked" in missing.stderr
    unknown = chronicle(url, "retry", "nothing")
    assert unknown.returncode == 2 and "no read model" in unknown.stderr
