"""A bounded, seeded fuzz of the whole GraphQL schema against a real `chronicle serve`.

hypothesis-graphql writes documents from the schema: valid ones (every query and mutation, with
ids of real users, products, orders and posts, a fresh `commandId` most of the time and small
numbers, so that commands reach the deciders and the projectors) and invalid ones. The run
fails on any 5xx, any body that is not JSON, any error coded `INTERNAL` or without a code, any
read model that leaves `running`, and any ERROR or traceback in the server's log.

`CHRONICLE_FUZZ_SEED` replays a run; `CHRONICLE_FUZZ_EXAMPLES` makes it longer.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

from api.schema import sdl
from tests.conftest import _admin, _with_database
from tests.e2e.conftest import Server, start_server

SEED = int(os.environ.get("CHRONICLE_FUZZ_SEED", "20261203"))
EXAMPLES = int(os.environ.get("CHRONICLE_FUZZ_EXAMPLES", "900"))
TIME_LIMIT = 45.0
"""Seconds of requests at most, whatever the number of examples."""

COMMAND_ID = re.compile(r'commandId: "(?:[^"\\]|\\.)*"')
NOT_FUZZED = {"rebuildProjection"}
"""A rebuild replays the whole log: a few hundred of them would be a load test, not a fuzz."""


@pytest.fixture(scope="module")
def fuzz_server(
    server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server of its own, on a database of its own: the fuzz writes junk others must not see."""
    name = template_database.replace("_template", "_fuzz")
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    log = tmp_path_factory.mktemp("fuzz") / "serve.log"
    env = {
        "DATABASE_URL": _with_database(server_url, name),
        "LOG_LEVEL": "info",
        "CHRONICLE_STALE_READ_TIMEOUT": "0.2",
    }
    server = start_server(env, log)
    try:
        yield server
    finally:
        server.stop()
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _call(client: httpx.Client, query: str, **variables: Any) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    assert "errors" not in body, body
    return dict(body["data"])


def _seed_world(client: httpx.Client) -> tuple[list[str], list[str]]:
    """Real aggregates for the fuzz to aim at: their ids, and positions of their events."""
    ids: list[str] = []
    positions: list[str] = []

    def keep(result: dict[str, Any]) -> str:
        payload = next(iter(result.values()))
        ids.append(payload["streamId"])
        positions.append(payload["position"])
        return str(payload["streamId"])

    users = [
        keep(
            _call(
                client,
                'mutation($e: String!) { registerUser(input: {email: $e, name: "Fuzz", '
                "age: 30}) { streamId position } }",
                e=f"fuzz-{n}@example.com",
            )
        )
        for n in range(3)
    ]
    products = [
        keep(
            _call(
                client,
                'mutation($s: String!) { addProduct(input: {sku: $s, name: "Lamp", '
                "priceCents: 1999, initialStock: 50}) { streamId position } }",
                s=f"FUZZ-{n}",
            )
        )
        for n in range(3)
    ]
    address = '{line1: "1 Main St", city: "Springfield", postalCode: "12345", country: "US"}'
    for customer in users[:2]:
        order = keep(
            _call(
                client,
                "mutation($c: ID!) { createOrder(input: {customerId: $c, shippingAddress: "
                f"{address}}}) {{ streamId position }} }}",
                c=customer,
            )
        )
        _call(
            client,
            "mutation($o: ID!, $p: ID!) { addLineItem(input: {orderId: $o, productId: $p, "
            "quantity: 2}) { position } }",
            o=order,
            p=products[0],
        )
    for author in users[:2]:
        keep(
            _call(
                client,
                'mutation($a: ID!) { createPost(input: {authorId: $a, message: "Hi"}) '
                "{ streamId position } }",
                a=author,
            )
        )
    return ids, positions


def _scalars(ids: list[str], positions: list[str]) -> dict[str, st.SearchStrategy[Any]]:
    """Mostly values that pass validation, so that commands reach the deciders; sometimes not.

    Fresh values come from a counter: hypothesis's own uuids repeat from run to run and within
    one (an email or a commandId taken once makes every later command a DUPLICATE)."""
    counter = itertools.count()
    fresh = st.just(None).map(lambda _: f"fuzz-{next(counter)}-{SEED}")
    return {
        "ID": st.one_of(
            st.sampled_from(ids),
            st.sampled_from(ids),
            st.sampled_from(ids),  # a command writes only when each of its ids is right
            fresh,
            fresh,
            st.text(max_size=12),
        ).map(nodes.String),
        "Int": st.one_of(
            st.integers(13, 99),  # ages, quantities, prices
            st.integers(13, 99),
            st.integers(1, 5),  # ratings
            st.integers(-(2**31), 2**31 - 1),
        ).map(nodes.Int),
        "String": st.one_of(
            fresh.map(lambda value: f"{value}@example.com"),
            st.sampled_from(["Ada Lovelace", "LAMP-1", "UPS", "card", "US", "12345", "ada"]),
            st.sampled_from(["Ada Lovelace", "Springfield", "1 Main St", "Hello"]),
            st.text(max_size=40),
        ).map(nodes.String),
        "Position": st.one_of(
            st.sampled_from(positions),
            st.sampled_from(positions),
            st.sampled_from(positions),  # most queries take one: most should get a real one
            st.integers(0, 2**63 - 1).map(str),
            st.text(max_size=8),
        ).map(nodes.String),
        "Cents": st.one_of(st.integers(0, 10**6), st.integers(-(2**63), 2**63)).map(nodes.Int),
        "DateTime": st.one_of(
            st.datetimes().map(lambda d: d.isoformat() + "Z"), st.text(max_size=12)
        ).map(nodes.String),
        "JSON": st.just(nodes.Null),
    }


def _problems(response: httpx.Response) -> list[str]:
    if response.status_code >= 500:
        return [f"HTTP {response.status_code}"]
    try:
        body = response.json()
    except ValueError:
        return [f"not JSON ({response.headers.get('content-type')}): {response.text[:200]}"]
    if not isinstance(body, dict):
        return [f"not a GraphQL response: {str(body)[:200]}"]
    found = []
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code in (None, "INTERNAL"):
            found.append(f"{code}: {error.get('message')!s:.200}")
    return found


def test_a_seeded_fuzz_of_the_whole_schema_finds_nothing(fuzz_server: Server) -> None:
    with httpx.Client(base_url=fuzz_server.url, timeout=30) as client:
        _fuzz(client, fuzz_server)


def _fuzz(client: httpx.Client, fuzz_server: Server) -> None:
    ids, positions = _seed_world(client)
    schema = sdl()
    fields = [
        name
        for kind in ("Query", "Mutation")
        for name in _root_fields(schema, kind)
        if name not in NOT_FUZZED
    ]
    scalars = _scalars(ids, positions)
    # Mostly one root field a document: one failing command nulls a whole mutation's data,
    # and hides the ones that succeeded beside it.
    one_field = {
        name: from_schema(schema, fields=[name], custom_scalars=scalars) for name in fields
    }
    mutations = [name for name in _root_fields(schema, "Mutation") if name in one_field]
    documents = st.one_of(
        st.sampled_from(fields).flatmap(one_field.__getitem__),
        st.sampled_from(fields).flatmap(one_field.__getitem__),
        # Commands write only when every argument passes: give them more tries than queries.
        st.sampled_from(mutations).flatmap(one_field.__getitem__),
        from_schema(schema, fields=fields, custom_scalars=scalars),
        from_schema(schema, fields=fields, custom_scalars=scalars, mode=Mode.NEGATIVE),
    )
    failures: list[tuple[str, list[str]]] = []
    chance = random.Random(SEED)
    codes: dict[str, int] = {}
    started = time.monotonic()

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # every failure is kept below: no shrinking, a bounded run
        suppress_health_check=list(HealthCheck),
    )
    @given(documents)
    def probe(document: str) -> None:
        if time.monotonic() - started > TIME_LIMIT:
            return
        # Most commands get a commandId of their own, as a client sends them: an id reused
        # for another command is refused (DUPLICATE) before it reaches a decider.
        document = COMMAND_ID.sub(
            lambda found: (
                f'commandId: "{uuid.UUID(int=chance.getrandbits(128))}"'
                if chance.random() < 0.8
                else found.group(0)
            ),
            document,
        )
        response = client.post("/graphql", json={"query": document})
        if problems := _problems(response):
            failures.append((document, problems))
            return
        for error in response.json().get("errors") or []:
            code = str((error.get("extensions") or {}).get("code"))
            codes[code] = codes.get(code, 0) + 1
        data = response.json().get("data") or {}
        kind = "mutations done" if document.lstrip().startswith("mutation") else "queries answered"
        codes[kind] = codes.get(kind, 0) + sum(value is not None for value in data.values())

    probe()
    assert not failures, f"seed {SEED}: {len(failures)} bad answers, e.g.\n" + "\n".join(
        f"{p}\n  for {d[:500]}" for d, p in failures[:5]
    )
    # The fuzz must reach the deciders and the projectors, not only the validators.
    decided = sum(codes.get(c, 0) for c in ("NOT_FOUND", "RULE_VIOLATED", "DUPLICATE"))
    assert codes.get("mutations done", 0) >= 20, f"seed {SEED}: too few commands done: {codes}"
    assert decided >= 50, f"seed {SEED}: too few commands decided: {codes}"
    assert codes.get("queries answered", 0) >= 20, f"seed {SEED}: too few answers: {codes}"
    _assert_every_read_model_running(client)
    output = Path(fuzz_server.log).read_text(errors="replace")
    assert "Traceback" not in output and " ERROR " not in output, output[-5000:]


def _root_fields(schema: str, kind: str) -> list[str]:
    from graphql import build_schema

    root = build_schema(schema).get_type(kind)
    return list(getattr(root, "fields", {}))


def _assert_every_read_model_running(client: httpx.Client) -> None:
    deadline = time.monotonic() + 30
    while True:
        statuses = _call(client, "{ projections { name status lag } }")["projections"]
        if all(s["status"] == "running" for s in statuses) and all(s["lag"] == 0 for s in statuses):
            return
        assert all(s["status"] == "running" for s in statuses), statuses
        assert time.monotonic() < deadline, statuses
        time.sleep(0.1)  # the server's runner is another process: poll its figures
