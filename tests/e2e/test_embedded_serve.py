"""`chronicle serve` with no DATABASE_URL: an embedded PostgreSQL, started and stopped with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.e2e.conftest import Server, start_server, unique_email

REGISTER = 'mutation($email: String!) { registerUser(input: {email: $email, name: "Em", age: 30}) { streamId version } }'
STATE = "query($id: ID!) { aggregateState(streamId: $id) { version state } }"


def call(server: Server, query: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(
        server.graphql_url, json={"query": query, "variables": variables}, timeout=30
    )
    body = response.json()
    assert "errors" not in body, body
    return dict(body["data"])


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and any(str(pgdata) in part for part in cmdline):
            found.append(process)
    return found


def serve_embedded(data_dir: Path, log: Path) -> Server:
    return start_server(
        {"CHRONICLE_DATA_DIR": str(data_dir), "LOG_LEVEL": "info"}, log, ready_within=120
    )


def test_a_fresh_process_serves_on_the_embedded_database_and_stops_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = serve_embedded(data_dir, tmp_path / "serve.log")
    try:
        assert "database: embedded PostgreSQL" in server.output()
        # initdb's own output is for LOG_LEVEL=debug: at INFO one line says what starts.
        assert "starting embedded PostgreSQL in" in server.output()
        for chatter in ("Running commandline", "Successful postgres command", "initdb"):
            assert chatter not in server.output(), server.output()
        user = call(server, REGISTER, email=unique_email())["registerUser"]
        assert user["version"] == 1
        assert postgres_processes(data_dir / "pgdata"), "the embedded server should be running"
    finally:
        server.stop()
    assert "embedded PostgreSQL stopped" in server.output(), server.output()
    assert postgres_processes(data_dir / "pgdata") == []


def test_a_server_left_by_a_crashed_process_is_reattached_then_stopped(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = serve_embedded(data_dir, tmp_path / "first.log")
    user = call(first, REGISTER, email=unique_email())["registerUser"]
    first.stop(signal.SIGKILL)
    left_running = postgres_processes(data_dir / "pgdata")
    assert left_running, "kill -9 leaves the embedded PostgreSQL running"

    second = serve_embedded(data_dir, tmp_path / "second.log")
    try:
        state = call(second, STATE, id=user["streamId"])["aggregateState"]
        assert state["version"] == 1
        assert call(second, REGISTER, email=unique_email())["registerUser"]["version"] == 1
    finally:
        second.stop()
    assert postgres_processes(data_dir / "pgdata") == []


def test_a_command_beside_a_running_server_detaches_and_leaves_it_running(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    server = serve_embedded(data_dir, tmp_path / "serve.log")
    try:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        status = subprocess.run(
            [sys.executable, "-m", "api.cli", "projections", "status"],
            env={**env, "CHRONICLE_DATA_DIR": str(data_dir), "LOG_LEVEL": "info"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert status.returncode == 0, status.stderr
        assert "users" in status.stdout
        # It let go of the server the other process serves from, and says so truthfully.
        assert "detached from the embedded PostgreSQL" in status.stderr, status.stderr
        assert "embedded PostgreSQL stopped" not in status.stderr, status.stderr
        assert postgres_processes(data_dir / "pgdata"), "the server's database should still run"
        assert call(server, REGISTER, email=unique_email())["registerUser"]["version"] == 1
    finally:
        server.stop()
    assert "embedded PostgreSQL stopped" in server.output(), server.output()
    assert postgres_processes(data_dir / "pgdata") == []
