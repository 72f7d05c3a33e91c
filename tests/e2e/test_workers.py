"""`chronicle serve --workers N`: several processes on one port, each with its own live feed,
one elected projection runner between them, metrics counted across them, a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
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


async def register(server: Server, name: str) -> dict[str, object]:
    """A new user named `name` (a unique email), through a connection of its own: its
    registerUser answer (streamId, position)."""
    email = f"{name.lower()}-{uuid.uuid4().hex[:6]}@x.io"
    answer = await graphql(
        server.graphql_url, REGISTER, input={"email": email, "name": name, "age": 30}
    )
    created = answer["registerUser"]
    assert isinstance(created, dict), answer
    return created


async def reads_its_write(server: Server, created: dict[str, object], name: str) -> None:
    """`created`'s user, read with minPosition from whichever worker answers, four times."""
    for _ in range(4):
        user = await graphql(
            server.graphql_url, USER, id=created["streamId"], at=created["position"]
        )
        assert user["user"] == {"id": created["streamId"], "name": name}


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

        start = await register(server, "W0")
        written = [str(start["streamId"])]
        # Subscribers on connections of their own, spread by the kernel over both workers, each
        # from the first registration on: whenever it goes live, it gets every later event
        # (from the log until it is live, pushed after), while more are written, each through
        # a connection of its own.
        subscribers = [
            Subscriber(server, EVENTS, streamType="User", after=start["position"])
            for _ in range(12)
        ]
        for n in range(1, 8):
            written.append(str((await register(server, f"W{n}"))["streamId"]))
        for subscriber in subscribers:
            await subscriber.until(lambda got: len(got) >= len(written) - 1)
            # Once each, in order.
            assert [e["streamId"] for e in subscriber.received] == written[1:]

        # Read your writes from whichever worker answers, whichever runs the projections.
        await reads_its_write(server, await register(server, "Last"), "Last")

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


def peers_of(pid: int) -> set[int]:
    """The remote ports of `pid`'s TCP connections: its sockets' inodes found in its
    /proc/net/tcp (a subscriber's local port names the worker that holds it)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def runner_pid(server: Server, besides: int | None = None) -> int | None:
    """The pid of the worker that says it runs the projections (the last to say so that is
    not `besides`), or None yet."""
    said = re.findall(r"this process runs the projections \(pid (\d+)\)", server.output())
    pids = [int(pid) for pid in said if int(pid) != besides]
    return pids[-1] if pids else None


async def until(condition: Callable[[], object], within: float = 30) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (a log file and /proc: nothing to await)
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("doorbell", ["postgres", "redis"])
async def test_a_killed_worker_is_replaced_and_the_others_go_on_losing_nothing(
    empty_database_url: str, tmp_path: Path, doorbell: str
) -> None:
    env = {
        "DATABASE_URL": empty_database_url,
        "CHRONICLE_WORKERS": "2",
        "LOG_LEVEL": "info",
        "CHRONICLE_STALE_READ_TIMEOUT": "30",  # reads wait through the runner's takeover
    }
    if doorbell == "redis":
        env["BROADCAST_URL"] = "redis://127.0.0.1:6379"
    server = start_server(env, tmp_path / "serve.log")
    subscribers: list[Subscriber] = []
    later: list[Subscriber] = []
    try:
        workers = workers_of(server.process.pid)
        assert len(workers) == 2, server.output()
        await until(lambda: runner_pid(server) is not None)
        killed = runner_pid(server)
        assert killed in workers, server.output()

        (kept,) = set(workers) - {killed}

        start = await register(server, "K0")
        written = [str((await register(server, "K1"))["streamId"])]
        # Subscribers, each live (it has the event after `start`), until each worker holds
        # three at least: the kernel hands connections to either, not evenly.
        on: dict[int, list[Subscriber]] = {killed: [], kept: []}
        while min(len(held) for held in on.values()) < 3:
            assert len(subscribers) < 60, {pid: len(held) for pid, held in on.items()}
            subscriber = Subscriber(server, EVENTS, streamType="User", after=start["position"])
            subscribers.append(subscriber)
            await subscriber.until(lambda got: len(got) == 1)
            (holder,) = [pid for pid in on if subscriber.local_port in peers_of(pid)]
            on[holder].append(subscriber)

        # SIGKILL: no shutdown, no goodbye; its connections and its advisory lock just end.
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        # The supervisor starts another worker, and a worker runs the projections again.
        await until(lambda: killed not in workers_of(server.process.pid))
        await until(lambda: len(workers_of(server.process.pid)) == 2)
        await until(lambda: runner_pid(server, besides=killed) is not None)

        for n in range(2, 8):
            created = await register(server, f"K{n}")
            written.append(str(created["streamId"]))
        # Read your writes, from whichever worker answers: the new runner projected them.
        await reads_its_write(server, created, "K7")

        # Subscribers of the killed worker were cut (to resume with `after`); those of the
        # other got every event, once each, in order; so do ones that subscribe now from the
        # first, to either worker.
        later = [
            Subscriber(server, EVENTS, streamType="User", after=start["position"]) for _ in range(4)
        ]
        for subscriber in [*on[kept], *later]:
            await subscriber.until(lambda got: len(got) >= len(written))
            assert [e["streamId"] for e in subscriber.received] == written
        for subscriber in on[killed]:  # cut, with nothing after the kill and no gap before
            async with asyncio.timeout(30):
                await subscriber.ended.wait()
            assert [e["streamId"] for e in subscriber.received] == written[:1]
    finally:
        await asyncio.gather(*(s.close() for s in [*subscribers, *later]))
        status = server.stop(signal.SIGTERM)
    output = server.output()
    assert status == 0, output
    assert "Traceback" not in output, output
    assert not still_running(workers_of(server.process.pid))
