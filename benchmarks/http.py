"""The request path over HTTP: Chronicle against a bare strawberry app, in the same run.

A real load generator, `wrk` (16 connections, 2 threads, a Lua script that gives every
`registerUser` a unique email and counts GraphQL errors), drives each server for a fixed
window after a warm-up, with two requests:

- `registerUser(input: {email, name, age}) { streamId version position }`, one new user each;
- `users(search: "ada", first: 10) { edges { node { id name } } totalCount }`, on ~1,000 users.

(a) Chronicle: `chronicle serve` (open mode, LOG_LEVEL=warning) on a fresh database of the
    PostgreSQL at --server, created and dropped by the run, with 1 and 2 workers
    (`--workers`).
(b) bare: a strawberry + uvicorn app defined here with a no-op mutation of the same shape that
    returns constants and a query that returns 10 constant users, with 1 and 2 workers.

Prints requests/s, p50 and p99 latency of each, where the CPU went (the server's processes and
PostgreSQL's, per request, and the machine's busy cores: wrk and PostgreSQL share them), the
ratios Chronicle / bare (same workers), and the machine's load average when each window
started. With `--profile FILE`, one more registerUser window runs under `py-spy record
--format raw` on the Chronicle process (py-spy installed separately).

    python -m benchmarks.http [--duration 10] [--warmup 2] [--profile /tmp/register.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import strawberry
from strawberry.asgi import GraphQL

from benchmarks.fanout import CORES, cpu_of, descendants, machine_busy

CONNECTIONS = 16
REGISTER = (
    "mutation($input: RegisterUserInput!) "
    "{ registerUser(input: $input) { streamId version position } }"
)
USERS = 'query { users(search: "ada", first: 10) { edges { node { id name } } totalCount } }'
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald"]
SEED = 1_000


# The bare baseline: the same shapes, no store, no read model.


@strawberry.input
class RegisterUserInput:
    email: str
    name: str
    age: int


@strawberry.type
class CommandResult:
    stream_id: strawberry.ID
    version: int
    position: str


@strawberry.type
class User:
    id: strawberry.ID
    name: str


@strawberry.type
class UserEdge:
    node: User


@strawberry.type
class UserConnection:
    edges: list[UserEdge]
    total_count: int


BARE_USERS = UserConnection(
    edges=[UserEdge(node=User(id=strawberry.ID(f"user-{i}"), name=f"Ada {i}")) for i in range(10)],
    total_count=10,
)


@strawberry.type
class BareQuery:
    @strawberry.field
    async def users(self, first: int = 10, search: str | None = None) -> UserConnection:
        return BARE_USERS


@strawberry.type
class BareMutation:
    @strawberry.mutation
    async def register_user(self, input: RegisterUserInput) -> CommandResult:
        return CommandResult(stream_id=strawberry.ID("user-1"), version=1, position="1")


def bare_app() -> GraphQL[None, None]:
    """The baseline's ASGI app (`uvicorn --factory benchmarks.http:bare_app`)."""
    return GraphQL(strawberry.Schema(query=BareQuery, mutation=BareMutation))


# wrk scripts: each thread has its own Lua state, so the counter is per thread and the thread's
# number goes into the email too; `done` sums the threads' error counts.

WRK_COMMON = """
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
errors = 0
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    errors = errors + 1
  end
end
function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("errors") end
  io.write(string.format("GRAPHQL_ERRORS %d\\n", n))
  io.write(string.format("P50_US %d\\nP99_US %d\\n", latency:percentile(50),
    latency:percentile(99)))
end
"""

WRK_REGISTER = (
    WRK_COMMON
    + """
local counter = 0
local prefix = "PREFIX"
local head = [==[{"query": DOCUMENT, "variables": {"input": {"email": "]==]
request = function()
  counter = counter + 1
  local body = head .. prefix .. "-" .. tid .. "-" .. counter
    .. '@bench.example", "name": "Bench User", "age": 33}}}'
  return wrk.format("POST", "/graphql", {["Content-Type"] = "application/json"}, body)
end
"""
)

WRK_QUERY = (
    WRK_COMMON
    + """
local body = [==[{"query": DOCUMENT}]==]
request = function()
  return wrk.format("POST", "/graphql", {["Content-Type"] = "application/json"}, body)
end
"""
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    load: float
    server_ms: float  # the server's CPU per request (all its processes)
    postgres_ms: float  # PostgreSQL's CPU per request (all its processes on this machine)
    machine_cores: float  # the whole machine's busy cores through the window


def wrk_script(folder: Path, name: str) -> Path:
    path = folder / f"{name}-{uuid.uuid4().hex[:8]}.lua"
    if name == "register":
        text = WRK_REGISTER.replace("PREFIX", uuid.uuid4().hex[:12])
        text = text.replace("DOCUMENT", json.dumps(REGISTER))
    else:
        text = WRK_QUERY.replace("DOCUMENT", json.dumps(USERS))
    path.write_text(text)
    return path


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on this machine (the server and its backends)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                pids.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile
    return pids


def run_wrk(url: str, script: Path, seconds: float, pid: int | None = None) -> Window:
    """A wrk window against `url`; with the server's `pid`, where the CPU went too."""
    load = os.getloadavg()[0]
    window = f"{max(1, round(seconds))}s"
    watched = {"server": descendants(pid) if pid else [], "postgres": postgres_pids()}
    before = {k: cpu_of(v) for k, v in watched.items()}
    busy_before, total_before = machine_busy()
    result = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{window}", "--timeout", "10s", "-s", str(script)]
        + [f"{url}/graphql"],
        capture_output=True,
        text=True,
    )
    busy_after, total_after = machine_busy()
    spent = {k: cpu_of(v) - before[k] for k, v in watched.items()}
    out = result.stdout
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed:\n{out}\n{result.stderr}")

    def number(pattern: str) -> float:
        found = re.search(pattern, out)
        if found is None:
            raise RuntimeError(f"wrk output without {pattern!r}:\n{out}\n{result.stderr}")
        return float(found.group(1))

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = max(number(r"(\d+) requests in"), 1)
    return Window(
        requests_per_s=number(r"Requests/sec:\s+([\d.]+)"),
        p50_ms=number(r"P50_US (\d+)") / 1000,
        p99_ms=number(r"P99_US (\d+)") / 1000,
        errors=int(number(r"GRAPHQL_ERRORS (\d+)")) + (int(non_2xx.group(1)) if non_2xx else 0),
        load=load,
        server_ms=spent["server"] / requests * 1000,
        postgres_ms=spent["postgres"] / requests * 1000,
        machine_cores=(busy_after - busy_before) / (total_after - total_before) * CORES,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, path: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + path, timeout=5).status_code < 500:
                return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


@contextmanager
def server(command: list[str], env: dict[str, str], probe: str) -> Iterator[tuple[str, int]]:
    """Start `command` (with `{port}` filled in) and yield its URL and pid until done."""
    port = free_port()
    process = subprocess.Popen([part.format(port=port) for part in command], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, probe)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(30)


def check(url: str) -> None:
    """One request of each kind answers without errors (wrk counts them too, but says less)."""
    register = {"email": f"probe-{uuid.uuid4().hex}@bench.example", "name": "Probe", "age": 40}
    for body in (
        {"query": REGISTER, "variables": {"input": register}},
        {"query": USERS},
    ):
        answer = httpx.post(f"{url}/graphql", json=body, timeout=30).json()
        if "errors" in answer:
            raise RuntimeError(f"{url}: {answer['errors']}")


async def seed(url: str) -> None:
    """Register SEED users over HTTP, then wait until the users read model has them all."""
    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        positions: list[str] = []

        async def register(i: int) -> None:
            variables = {
                "input": {
                    "email": f"seed-{i}@bench.example",
                    "name": f"{FIRST[i % len(FIRST)]} Seeded {i:04}",
                    "age": 20 + i % 50,
                }
            }
            body = {"query": REGISTER, "variables": variables}
            answer = (await client.post("/graphql", json=body)).json()
            if "errors" in answer:
                raise RuntimeError(answer["errors"])
            positions.append(answer["data"]["registerUser"]["position"])

        for start in range(0, SEED, 100):
            await asyncio.gather(*(register(i) for i in range(start, min(start + 100, SEED))))
        caught_up = "query($p: Position) { users(first: 1, minPosition: $p) { totalCount } }"
        body = {"query": caught_up, "variables": {"p": max(positions, key=int)}}
        answer = (await client.post("/graphql", json=body)).json()
        if "errors" in answer:
            raise RuntimeError(answer["errors"])


def measure(url: str, pid: int, folder: Path, warmup: float, duration: float) -> dict[str, Window]:
    windows = {}
    for name in ("register", "users"):
        # A script each: the counter restarts with every wrk, the emails must not repeat.
        run_wrk(url, wrk_script(folder, name), warmup)
        windows[name] = run_wrk(url, wrk_script(folder, name), duration, pid)
    return windows


def profile(url: str, pid: int, folder: Path, seconds: float, output: str) -> None:
    """A registerUser window under py-spy, sampling the Chronicle process."""
    spy = subprocess.Popen(
        ["py-spy", "record", "--format", "raw", "-d", str(int(seconds)), "-o", output]
        + ["--pid", str(pid)],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(1)  # py-spy attaches
    run_wrk(url, wrk_script(folder, "register"), seconds - 1)
    spy.wait(60)


async def create_database(base: str, name: str) -> None:
    admin = await asyncpg.connect(f"{base}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def drop_database(base: str, name: str) -> None:
    admin = await asyncpg.connect(f"{base}/postgres")
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def line(label: str, window: Window) -> str:
    flag = f"  {window.errors} ERRORS" if window.errors else ""
    return (
        f"  {label:<26} {window.requests_per_s:8.0f} req/s   p50 {window.p50_ms:7.1f} ms"
        f"   p99 {window.p99_ms:7.1f} ms | CPU/req server {window.server_ms:5.2f} ms"
        f"  postgres {window.postgres_ms:5.2f} ms  machine {window.machine_cores:4.2f} cores"
        f" | load {window.load:4.2f}{flag}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="measured seconds per window")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before")
    parser.add_argument("--profile", help="write py-spy raw stacks of a registerUser window here")
    parser.add_argument(
        "--server",
        default=os.environ.get(
            "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("benchmarks.http needs wrk (apt-get install wrk)")

    name = f"chronicle_bench_{uuid.uuid4().hex[:8]}"
    base = args.server.rsplit("/", 1)[0]
    asyncio.run(create_database(base, name))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CHRONICLE_JWT") and key != "CHRONICLE_AUTH"
    }
    env |= {"DATABASE_URL": f"{base}/{name}", "LOG_LEVEL": "warning"}
    results: dict[str, dict[str, Window]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            subprocess.run([sys.executable, "-m", "api.cli", "migrate"], env=env, check=True)
            for workers in (1, 2):
                serve = [sys.executable, "-m", "api.cli", "serve", "--port", "{port}"]
                serve += ["--workers", str(workers)]
                with server(serve, env, "/health") as (url, pid):
                    if workers == 1:
                        print(f"seeding {SEED} users ...", flush=True)
                        asyncio.run(seed(url))
                    check(url)
                    label = f"chronicle, {workers} worker{'s' if workers > 1 else ''}"
                    results[label] = measure(url, pid, folder, args.warmup, args.duration)
                    if args.profile and workers == 1:
                        profile(url, pid, folder, args.duration, args.profile)
            for workers in (1, 2):
                bare = [sys.executable, "-m", "uvicorn", "--factory", "benchmarks.http:bare_app"]
                bare += ["--port", "{port}", "--workers", str(workers), "--log-level", "warning"]
                with server(bare, env, "/graphql") as (url, pid):
                    check(url)
                    label = f"bare, {workers} worker{'s' if workers > 1 else ''}"
                    results[label] = measure(url, pid, folder, args.warmup, args.duration)
    finally:
        asyncio.run(drop_database(base, name))

    print(
        f"wrk, {CONNECTIONS} connections, {args.duration:g} s after {args.warmup:g} s warm-up,"
        f" {CORES} cores (CPU per request of the server's processes and of PostgreSQL's, the"
        f" machine's busy cores; load: 1-minute average when the window started)"
    )
    for request, title in (("register", "registerUser"), ("users", 'users(search: "ada")')):
        print(title)
        for label, windows in results.items():
            print(line(label, windows[request]))
    for count in ("1 worker", "2 workers"):
        ours, theirs = results[f"chronicle, {count}"], results[f"bare, {count}"]
        for request, title, goal in (
            ("register", "registerUser", 0.6),
            ("users", "users(search:)", 0.5),
        ):
            ratio = ours[request].requests_per_s / theirs[request].requests_per_s
            print(
                f"ratio chronicle/bare ({count}) {title:<15} {ratio:.2f} (goal >= {goal}),"
                f" chronicle p99 {ours[request].p99_ms:.1f} ms (goal < 50 ms)"
            )
    if args.profile:
        print(f"py-spy raw stacks of a registerUser window: {args.profile}")


if __name__ == "__main__":
    main()
