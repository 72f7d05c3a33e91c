"""`chronicle serve --workers N`: several processes on one port, each with its own live feed,
one elected projection runner between them, metrics counted across them, a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Server, start_server
from tests.e2e.live import EVENTS, Subscriber

REGISTER = (
    "mutation($input: RegisterUserInput!) { registerUser(input: $input) { streamId position } }"
)
USER = "query($id: ID!, $at: Position) { user(id: $id, minPosition: $at) { id name } }"


def workers_of(parent: int) -> list[int]:
    """The live worker processes of `parent` (not multiprocessing's resource tracker)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == parent and fields[0] != "Z" and b"spawn_main" in command:
                children.append(int(entry.name))
    return children


def still_running(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


async def graphql(url: str, query: str, **variables: object) -> dict[str, object]:
    """One request on a connection of its own: the kernel hands each to either worker."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(url, json={"query": query, "variables": variables})
    body = response.json()
    assert "errors" not in body, body
    return dict(body["data"])


def commands_ok(metrics: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "chronicle_commands_total" and sample.labels.get("outcome") == "ok"
    )


async def test_two_workers_serve_one_port_with_one_runner_and_every_subscriber_gets_every_event(
    empty_database_url: str, tmp_path: Path
) -> None:
    # An empty database: the parent migrates it, once, before any worker starts.
    server: Server = start_server(
        {"DATABASE_URL": empty_database_url, "CHRONICLE_WORKERS": "2", "LOG_LEVEL": "info"},
        tmp_path / "serve.log",
    )
    subscribers: list[Subscriber] = []
    try:
        workers = workers_of(server.process.pid)
        assert len(workers) == 2, server.output()

        # Subscribers on connections of their own, spread by the kernel over both workers.
        subscribers = [Subscriber(server, EVENTS, streamType="User") for _ in range(12)]
        first = await graphql(
            server.graphql_url, REGISTER, input={"email": "w0@x.io", "name": "W0", "age": 30}
        )
        written = [str(dict(first["registerUser"])["streamId"])]
        # Registered before the first write, each subscriber is live: wait until it has it,
        # then write more, each through a connection of its own.
        for subscriber in subscribers:
            await subscriber.until(lambda got: any(e["streamId"] == written[0] for e in got))
        for n in range(1, 8):
            answer = await graphql(
                server.graphql_url,
                REGISTER,
                input={"email": f"w{n}-{uuid.uuid4().hex[:6]}@x.io", "name": f"W{n}", "age": 30},
            )
            written.append(str(dict(answer["registerUser"])["streamId"]))
        for subscriber in subscribers:
            await subscriber.until(lambda got: len(got) >= len(written))
            assert [e["streamId"] for e in subscriber.received] == written  # once each, in order

        # Read your writes from whichever worker answers, whichever runs the projections.
        last = await graphql(
            server.graphql_url,
            REGISTER,
            input={"email": f"last-{uuid.uuid4().hex[:6]}@x.io", "name": "Last", "age": 30},
        )
        created = dict(last["registerUser"])
        for _ in range(4):
            user = await graphql(
                server.graphql_url, USER, id=created["streamId"], at=created["position"]
            )
            assert user["user"] == {"id": created["streamId"], "name": "Last"}

        # Any worker's /metrics counts both workers' commands.
        async with httpx.AsyncClient() as client:
            for _ in range(4):
                metrics = (await client.get(f"{server.url}/metrics")).text
                assert commands_ok(metrics) == len(written) + 1
    finally:
        await asyncio.gather(*(s.close() for s in subscribers))
        status = server.stop(signal.SIGTERM)
    output = server.output()
    assert status == 0, output
    assert output.count("this process runs the projections") == 1, output
    assert output.count("Application shutdown complete") == 2, output
    assert "Traceback" not in output, output
    assert not still_running(workers)  # both stopped with the parent


async def test_workers_below_one_are_refused(empty_database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    environment = {**os.environ, "DATABASE_URL": empty_database_url, "CHRONICLE_WORKERS": "0"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "serve", env=environment, stderr=asyncio.subprocess.PIPE
    )
    _, errors = await process.communicate()
    log.write_bytes(errors)
    assert process.returncode != 0
    assert b"--workers (CHRONICLE_WORKERS) must be 1 or more" in errors
