"""Live fan-out: commit-to-client latency of the `events` subscription, against a bare baseline.

(a) baseline: a bare strawberry app (no Chronicle code: no store, no LiveFeed, no extensions)
    in its own uvicorn process, whose `events` subscription yields from a per-subscriber
    asyncio.Queue, fed by an in-process producer task that builds each event once and puts it
    into every subscriber's queue, one event per 1/rate s on an absolute schedule;
(b) chronicle: a real `chronicle serve` (uvicorn) on a fresh database, doorbell by default
    (Postgres LISTEN/NOTIFY), `CHRONICLE_SUBSCRIBER_BUFFER` large so nobody is cut off (any
    `FELL_BEHIND` is reported and counts as lost events). A writer in this process appends
    one event per 1/rate s on an absolute schedule through `EventStore` (one new stream per
    command, with a commandId), as the command handler would.

Time zero of an event: (b) `time.monotonic()` right after `EventStore.append` returns (the
commit); (a) the producer's schedule slot, read with `time.monotonic()` in the baseline
process (CLOCK_MONOTONIC: one clock for every process on the machine). Both are independent
of the server's event loop: if the loop is busy, the baseline producer hands the event out
late, as Chronicle reads the NOTIFY late, and that wait is latency on both sides. The
difference is what Chronicle adds: the NOTIFY, the feed read, LiveFeed, its schema.

Both get the same subscribers, opened by the same client code (raw graphql-transport-ws, in
Node with `ws` by default, benchmarks/node/fanout_client.mjs, or in Python with `websockets`
with `--client python`; spread over `--clients` processes, which stamp CLOCK_MONOTONIC at
receipt and find the position with a regex rather than a JSON parse), with the same document
`subscription { events(streamType: "FanoutBench") { position } }` (`--fields` changes the
selection set; the baseline's Event has the same fields and ignores `streamType`). Before each
measured window, marker events are written until every subscriber has received one (a
subscription without `after` starts from now); markers are not measured. After the window,
the run waits until every event reached every subscriber (or nothing arrives for `--drain` s).

Prints, for both: subscribers, events written, latency p50/p99/max, events lost (expected
deliveries minus distinct deliveries; duplicates counted apart), FELL_BEHIND errors, the
delivery rate, and the CPU each party used from the first measured write until everything
arrived (the server's processes, also per delivered message and the share of it spent in
the kernel; the client processes; the writer; the whole machine), the server's resident
memory per subscriber (all connected and live, before the window) and the machine's load.
Then the ratio of the p99s, deliveries per server CPU-second against the baseline's, and a
capacity sweep of Chronicle alone (with 1 or more workers, `--sweep-workers`): p99 per
subscriber count and the largest count held at p99 < 250 ms with nothing lost.
`--profile FILE` samples the Chronicle server of each window with py-spy.

    python -m benchmarks.fanout [--subscribers 1000] [--rate 50] [--seconds 30]
        [--workers 1] [--sweep 50,100,150,250,500,1000] [--sweep-workers 1,2]
        [--sweep-seconds S] [--sweep-only] [--clients 2] [--fields position] [--buffer N]
        [--drain 15] [--server URL] [--quick] [--profile FILE] [--deflate]

The server defaults to TEST_DATABASE_URL, else 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from strawberry.asgi import GraphQL
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig

from api.scalars import SCALARS, Position

STREAM_TYPE = "FanoutBench"
POSITION = re.compile(r'"position":\s*"?(\d+)')
INIT = '{"type":"connection_init"}'
PONG = '{"type":"pong"}'
TARGET_P99_MS = 100.0
TARGET_RATIO = 3.0
CAPACITY_P99_MS = 250.0
CPU_RATIO_TARGET = 3.0
MEMORY_TARGET_KB = 20.0
DEFLATE = "FANOUT_DEFLATE"
"""Set to 1 by --deflate: the clients (both kinds) offer permessage-deflate."""
DEFAULT_BUFFER = 1_000_000
CORES = os.cpu_count() or 1


# --------------------------------------------------------------------------- processes


def raise_open_file_limit(wanted: int = 65_536) -> None:
    """Each websocket is a file descriptor: lift the soft limit as far as the hard one allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int, kernel_only: bool = False) -> float:
    """User + system CPU time of a process so far, or system (kernel) time only (0 if it is
    gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[12]) if kernel_only else int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_of(pids: list[int]) -> float:
    """User + system CPU seconds so far of `pids`, summed."""
    return sum(cpu_seconds(pid) for pid in pids)


def cpu_by_role(watched: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each role's processes, and the server's kernel share."""
    seconds = {k: cpu_of(pids) for k, pids in watched.items()}
    seconds["server kernel"] = sum(cpu_seconds(p, kernel_only=True) for p in watched["server"])
    return seconds


def descendants(pid: int) -> list[int]:
    """`pid` and every live process below it (a server's workers)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            parents.setdefault(parent, []).append(int(entry.name))
    tree, frontier = [pid], [pid]
    while frontier:
        children = parents.get(frontier.pop(), [])
        tree += children
        frontier += children
    return tree


def rss_kb(pids: list[int]) -> int:
    """Resident memory of `pids`, summed, in KiB."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:")
    return total


def load() -> str:
    """The machine's load averages (1, 5, 15 minutes)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def pids(self) -> list[int]:
        """The server's process and its workers'."""
        return descendants(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def spawn_server(name: str, command: list[str], env: dict[str, str]) -> Server:
    port = free_port()
    handle = tempfile.NamedTemporaryFile(  # closed here, the server keeps writing to it
        prefix=f"fanout-{name}-", suffix=".log", delete=False
    )
    process = subprocess.Popen(
        [*command, "--port", str(port)], env=env, stdout=handle, stderr=subprocess.STDOUT
    )
    handle.close()
    return Server(name=name, process=process, port=port, log=Path(handle.name))


async def wait_ready(server: Server, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=1) as client:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited early:\n{server.output()}")
            try:
                if (await client.get(f"{server.http_url}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{server.name} did not start:\n{server.output()}") from None
            await asyncio.sleep(0.1)  # another process: poll until it answers


@contextlib.asynccontextmanager
async def running(server: Server) -> AsyncGenerator[Server, None]:
    try:
        await wait_ready(server)
        print(f"  {server.name}: pid {server.process.pid}, port {server.port}", flush=True)
        yield server
    finally:
        await asyncio.to_thread(server.stop)
        if "Traceback" in server.output():
            print(f"  {server.name} logged a traceback, see {server.log}", flush=True)
        else:
            server.log.unlink(missing_ok=True)


def chronicle_server(url: str, buffer: int, workers: int = 1) -> Server:
    env = {k: v for k, v in os.environ.items() if k != "BROADCAST_URL"}
    env.update(
        DATABASE_URL=url,
        LOG_LEVEL="warning",
        CHRONICLE_SUBSCRIBER_BUFFER=str(buffer),
        CHRONICLE_MIGRATE_ON_START="false",
        CHRONICLE_WORKERS=str(workers),
        CHRONICLE_WS_COMPRESSION="true" if os.environ.get(DEFLATE) == "1" else "false",
    )
    name = "chronicle serve" + (f" --workers {workers}" if workers > 1 else "")
    return spawn_server(name, [sys.executable, "-m", "api.cli", "serve"], env)


def baseline_server() -> Server:
    command = [sys.executable, "-m", "benchmarks.fanout", "--serve-baseline"]
    return spawn_server("baseline", command, dict(os.environ))


# --------------------------------------------------------------------------- the baseline app


@strawberry.type
class BaselineEvent:
    position: Position
    event_id: strawberry.ID
    stream_id: strawberry.ID
    stream_type: str
    version: int
    type: str
    schema_version: int
    data: JSON
    metadata: JSON
    recorded_at: datetime


_QUEUES: set[asyncio.Queue[BaselineEvent]] = set()
"""The baseline process's subscribers, one queue each."""


@strawberry.type
class BaselineQuery:
    @strawberry.field
    def subscribers(self) -> int:
        return len(_QUEUES)


@strawberry.type
class BaselineSubscription:
    @strawberry.subscription
    async def events(self, stream_type: str | None = None) -> AsyncGenerator[BaselineEvent, None]:
        queue: asyncio.Queue[BaselineEvent] = asyncio.Queue()
        _QUEUES.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            _QUEUES.discard(queue)


class _Producer:
    """The baseline's in-process producer: builds each event once, puts it in every queue."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.task: asyncio.Task[None] | None = None

    @staticmethod
    def hand_out(position: int) -> None:
        event = BaselineEvent(
            position=Position(position),
            event_id=strawberry.ID(str(uuid.uuid4())),
            stream_id=strawberry.ID(f"fanout-{position}"),
            stream_type=STREAM_TYPE,
            version=1,
            type="Ticked",
            schema_version=1,
            data=JSON({"n": position}),
            metadata=JSON({"actor": "bench"}),
            recorded_at=datetime.now(UTC),
        )
        for queue in _QUEUES:
            queue.put_nowait(event)

    async def run(self, rate: float, count: int, first: int) -> None:
        """`count` events at `rate` on an absolute schedule; each one's time zero is its slot."""
        self.sent = {}
        start = time.monotonic()
        for i in range(count):
            slot = start + i / rate
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.hand_out(first + i)
            self.sent[first + i] = slot


_PRODUCER = _Producer()


async def _emit(request: Request) -> Response:
    """One marker, handed out now."""
    _PRODUCER.hand_out(int(request.query_params["position"]))
    return PlainTextResponse(str(len(_QUEUES)))


async def _produce(request: Request) -> Response:
    """Start the measured events; `GET /sent` answers with their times zero once written."""
    params = request.query_params
    run = _PRODUCER.run(float(params["rate"]), int(params["count"]), int(params["first"]))
    _PRODUCER.task = asyncio.create_task(run)
    return PlainTextResponse("started")


async def _sent(request: Request) -> Response:
    assert _PRODUCER.task is not None
    await _PRODUCER.task
    return JSONResponse({str(k): v for k, v in _PRODUCER.sent.items()})


async def _health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def serve_baseline(port: int) -> None:
    """The bare strawberry app: no extensions, default settings, in uvicorn like `serve`."""
    import uvicorn

    schema = strawberry.Schema(
        query=BaselineQuery,
        subscription=BaselineSubscription,
        config=StrawberryConfig(scalar_map=SCALARS),
    )
    graphql: GraphQL[None, None] = GraphQL(schema)
    app = Starlette(
        routes=[
            Route("/health", _health),
            Route("/emit", _emit, methods=["POST"]),
            Route("/produce", _produce, methods=["POST"]),
            Route("/sent", _sent),
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", log_config=None)


# --------------------------------------------------------------------------- clients


class _Clients:
    """One client process's subscribers: connect, subscribe, stamp every message's receipt."""

    def __init__(self, link: Connection, url: str, count: int, document: str) -> None:
        self.link = link
        self.url = url
        self.subscribe = json.dumps(
            {"id": "1", "type": "subscribe", "payload": {"query": document}}
        )
        self.positions = [array("q") for _ in range(count)]
        self.times = [array("d") for _ in range(count)]
        self.sockets: list[Any] = []
        self.connected = 0
        self.live = 0  # subscribers that received at least one event
        self.threshold = 2**63 - 1
        self.counted = 0  # events received above `threshold`
        self.fell_behind = 0
        self.completed = 0
        self.failed = 0
        self.closed = 0
        self.other = 0
        self.first_problem = ""
        self.stopping = False
        self.limit = asyncio.Semaphore(32)

    def note(self, problem: str) -> None:
        if not self.first_problem:
            self.first_problem = problem[:300]

    async def subscriber(self, i: int) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed
        from websockets.typing import Subprotocol

        positions, times, find = self.positions[i], self.times[i], POSITION.search
        try:
            async with self.limit:
                ws = await connect(
                    self.url,
                    subprotocols=[Subprotocol("graphql-transport-ws")],
                    compression="deflate" if os.environ.get(DEFLATE) == "1" else None,
                    max_size=None,
                    ping_interval=None,
                    open_timeout=120,
                    close_timeout=5,
                )
                self.sockets.append(ws)
                await ws.send(INIT)
                ack = await ws.recv()
                if "connection_ack" not in ack:
                    raise RuntimeError(f"no connection_ack: {ack!r}")
                await ws.send(self.subscribe)
            self.connected += 1
            async for message in ws:
                now = time.monotonic()
                match = find(message)  # type: ignore[arg-type]
                if match is not None:
                    position = int(match.group(1))
                    if not positions:
                        self.live += 1
                    positions.append(position)
                    times.append(now)
                    if position > self.threshold:
                        self.counted += 1
                elif '"ping"' in message:
                    await ws.send(PONG)
                elif "FELL_BEHIND" in message:
                    self.fell_behind += 1
                    self.note(str(message))
                elif '"complete"' in message:
                    self.completed += 1
                else:
                    self.other += 1
                    self.note(str(message))
        except ConnectionClosed as closed:
            if not self.stopping:
                self.closed += 1
                self.note(f"closed: {closed}")
        except Exception as error:
            self.failed += 1
            self.note(repr(error))

    def status(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "live": self.live,
            "counted": self.counted,
            "fell_behind": self.fell_behind,
            "completed": self.completed,
            "failed": self.failed,
            "closed": self.closed,
            "other": self.other,
            "problem": self.first_problem,
        }

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.subscriber(i)) for i in range(len(self.positions))]
        while True:
            command = await asyncio.to_thread(self.link.recv)  # the link stays blocking
            if command == "status":
                self.link.send(self.status())
            elif isinstance(command, tuple) and command[0] == "threshold":
                self.threshold, self.counted = command[1], 0
                self.link.send(self.status())
            elif command == "stop":
                break
        self.stopping = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(15):
                await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        result = self.status()
        result["positions"] = [p.tobytes() for p in self.positions]
        result["times"] = [t.tobytes() for t in self.times]
        self.link.send(result)


def _client_process(link: Connection, url: str, count: int, document: str) -> None:
    raise_open_file_limit()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    clients = _Clients(link, url, count, document)
    try:
        import uvloop
    except ImportError:
        asyncio.run(clients.run())
    else:
        uvloop.run(clients.run())


def _summed(answers: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("connected", "live", "counted", "fell_behind", "completed", "failed", "closed", "other")
    total: dict[str, Any] = {key: sum(a[key] for a in answers) for key in keys}
    total["problem"] = next((a["problem"] for a in answers if a["problem"]), "")
    return total


def shares(subscribers: int, processes: int) -> list[int]:
    processes = max(1, min(processes, subscribers))
    return [subscribers // processes + (i < subscribers % processes) for i in range(processes)]


class ClientPool:
    """`subscribers` websocket subscribers spread over `processes` client processes (Python)."""

    def __init__(self, url: str, subscribers: int, processes: int, document: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.links: list[Connection] = []
        self.processes: list[Any] = []
        for share in shares(subscribers, processes):
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_client_process, args=(child_end, url, share, document), daemon=True
            )
            process.start()
            child_end.close()
            self.links.append(parent_end)
            self.processes.append(process)

    def _ask(self, command: Any, within: float) -> list[dict[str, Any]]:
        for link in self.links:
            link.send(command)
        answers = []
        for link in self.links:
            if not link.poll(within):
                raise RuntimeError(f"a client process did not answer {command!r}")
            answers.append(link.recv())
        return answers

    async def ask(self, command: Any, within: float = 60) -> dict[str, Any]:
        """Send `command` to every client process; their counters summed."""
        return _summed(await asyncio.to_thread(self._ask, command, within))

    async def collect(self) -> tuple[dict[str, Any], list[tuple[array[int], array[float]]]]:
        """Stop every subscriber; the counters and each subscriber's (positions, times)."""
        answers = await asyncio.to_thread(self._ask, "stop", 120)
        received = []
        for answer in answers:
            for raw_positions, raw_times in zip(answer["positions"], answer["times"], strict=True):
                positions, times = array("q"), array("d")
                positions.frombytes(raw_positions)
                times.frombytes(raw_times)
                received.append((positions, times))
        return _summed(answers), received

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def close(self) -> None:
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join(5)
            if process.is_alive():
                process.kill()
                process.join()


NODE_CLIENTS = Path(__file__).resolve().parent / "node"


class NodeClientPool(ClientPool):
    """The same subscribers in Node processes (benchmarks/node/fanout_client.mjs, `ws`): a
    fraction of the Python client's CPU per message, on cores the server shares."""

    def __init__(self, url: str, subscribers: int, processes: int, document: str) -> None:
        if not (NODE_CLIENTS / "node_modules" / "ws").is_dir():
            subprocess.run(["npm", "ci", "--silent"], cwd=NODE_CLIENTS, check=True)
        self.folder = tempfile.TemporaryDirectory(prefix="fanout-clients-")
        self.clients: list[subprocess.Popen[str]] = []
        for n, share in enumerate(shares(subscribers, processes)):
            output = str(Path(self.folder.name) / f"received-{n}.bin")
            command = ["node", str(NODE_CLIENTS / "fanout_client.mjs"), url, str(share), document]
            self.clients.append(
                subprocess.Popen(
                    [*command, output],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )

    def _ask(self, command: Any, within: float) -> list[dict[str, Any]]:
        line = f"threshold {command[1]}" if isinstance(command, tuple) else str(command)
        for client in self.clients:
            assert client.stdin is not None
            client.stdin.write(line + "\n")
            client.stdin.flush()
        answers = []
        for client in self.clients:
            assert client.stdout is not None
            ready, _, _ = select.select([client.stdout], [], [], within)
            if not ready:
                raise RuntimeError(f"a client process did not answer {command!r}")
            answers.append(json.loads(client.stdout.readline()))
        return answers

    async def collect(self) -> tuple[dict[str, Any], list[tuple[array[int], array[float]]]]:
        answers = await asyncio.to_thread(self._ask, "stop", 120)
        received = []
        for answer in answers:
            received += read_received(Path(answer["file"]))
        return _summed(answers), received

    @property
    def pids(self) -> list[int]:
        return [client.pid for client in self.clients]

    def close(self) -> None:
        for client in self.clients:
            try:
                client.wait(10)
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait()
        self.folder.cleanup()


def read_received(path: Path) -> list[tuple[array[int], array[float]]]:
    """A Node client's file: uint32 subscribers, then each one's uint32 n, n int64 positions
    and n float64 times, little-endian."""
    data = path.read_bytes()
    (subscribers,) = struct.unpack_from("<I", data)
    offset, received = 4, []
    for _ in range(subscribers):
        (n,) = struct.unpack_from("<I", data, offset)
        offset += 4
        positions, times = array("q"), array("d")
        positions.frombytes(data[offset : offset + 8 * n])
        times.frombytes(data[offset + 8 * n : offset + 16 * n])
        offset += 16 * n
        received.append((positions, times))
    return received


def client_pool(args: argparse.Namespace, url: str, subscribers: int, document: str) -> ClientPool:
    chosen = NodeClientPool if args.client == "node" else ClientPool
    return chosen(url, subscribers, args.clients, document)


# --------------------------------------------------------------------------- one measurement

Emit = Callable[[], Awaitable[tuple[int, float]]]
"""Writes one event; returns its position and its time zero (time.monotonic())."""


@dataclass(frozen=True)
class Writer:
    marker: Callable[[], Awaitable[int]]
    """Writes one marker event now; returns its position."""
    window: Callable[[float, int], Awaitable[dict[int, float]]]
    """Writes `count` events at `rate` per second; returns each one's time zero by position."""


@dataclass
class Result:
    name: str
    subscribers: int
    seconds: float
    written: int = 0
    latencies: list[float] = field(default_factory=list)  # ms
    lost: int = 0
    duplicates: int = 0
    counters: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds each party used from the first measured write until all was delivered."""
    window_start: float = 0.0
    window: float = 0.0  # seconds of writing
    busy: float = 0.0  # seconds from the first write until all was delivered (or given up)
    drain: float = 0.0  # seconds waited for delivery after the last write
    last_receipt: float = 0.0
    kb_per_subscriber: float = 0.0
    """The server's resident memory (all its processes) with every subscriber connected and
    live but before the window, less before the first connected, per subscriber."""
    load: str = ""
    """The machine's load averages when the window started."""

    @property
    def delivered(self) -> int:
        return len(self.latencies) + self.duplicates

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = self.latencies  # sorted by `analyse`
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    @property
    def p99(self) -> float:
        return self.percentile(0.99)


async def paced(rate: float, count: int, emit: Emit) -> dict[int, float]:
    """`count` events at `rate` per second on an absolute schedule; their times zero."""
    into: dict[int, float] = {}
    pending: set[asyncio.Task[None]] = set()

    async def one() -> None:
        position, at = await emit()
        into[position] = at

    start = time.monotonic()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return into


def analyse(result: Result, sent: dict[int, float], received: list[Any]) -> None:
    latencies: list[float] = []
    for positions, times in received:
        seen: set[int] = set()
        for position, at in zip(positions, times, strict=True):
            zero = sent.get(position)
            if zero is None:
                continue  # a marker
            if position in seen:
                result.duplicates += 1
                continue
            seen.add(position)
            latencies.append((at - zero) * 1000)
            result.last_receipt = max(result.last_receipt, at)
    latencies.sort()
    result.latencies = latencies
    result.lost = result.subscribers * len(sent) - len(latencies)


async def measure(
    name: str,
    server: Server,
    writer: Writer,
    args: argparse.Namespace,
    subscribers: int,
    seconds: float,
) -> Result:
    """Open `subscribers`, make them all live, write `seconds` of events, wait for delivery."""
    result = Result(name=name, subscribers=subscribers, seconds=seconds)
    memory_before = rss_kb(server.pids)
    pool = client_pool(args, server.ws_url, subscribers, document(args.fields))
    try:
        started = time.monotonic()
        while (status := await pool.ask("status"))["connected"] < subscribers:
            if status["failed"] or status["closed"] or time.monotonic() - started > 180:
                raise RuntimeError(f"{name}: subscribers could not connect: {status}")
            await asyncio.sleep(0.2)
        # Markers until every subscriber has received one: from then on all are live.
        last_marker = 0
        while (status := await pool.ask("status"))["live"] < subscribers:
            if time.monotonic() - started > 240:
                raise RuntimeError(f"{name}: subscribers did not go live: {status}")
            last_marker = max(last_marker, await writer.marker())
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # let the last markers drain
        result.kb_per_subscriber = (rss_kb(server.pids) - memory_before) / subscribers
        await pool.ask(("threshold", last_marker))
        print(
            f"  {name}: {subscribers} subscribers live after {time.monotonic() - started:.1f}s; "
            f"writing {args.rate:g} ev/s for {seconds:g}s",
            flush=True,
        )

        watched = {"server": server.pids, "clients": pool.pids, "writer": [os.getpid()]}
        result.load = load()
        before = cpu_by_role(watched)
        busy_before, total_before = machine_busy()
        profiler = profile(server, args, name, seconds)
        result.window_start = time.monotonic()
        sent = await writer.window(args.rate, round(args.rate * seconds))
        if profiler is not None:
            await asyncio.to_thread(profiler.wait)
        result.window = time.monotonic() - result.window_start
        result.written = len(sent)

        # Wait for delivery: until everything arrived, or nothing more arrives for a while.
        expected = subscribers * len(sent)
        drain_start, progress_at, seen = time.monotonic(), time.monotonic(), -1
        while (status := await pool.ask("status"))["counted"] < expected:
            now = time.monotonic()
            if status["counted"] != seen:
                seen, progress_at = status["counted"], now
            if now - progress_at > args.drain or now - drain_start > args.drain_limit:
                break
            await asyncio.sleep(0.25)
        result.drain = time.monotonic() - drain_start
        result.busy = time.monotonic() - result.window_start
        after = cpu_by_role(watched)
        busy_after, total_after = machine_busy()
        result.cpu = {k: after[k] - before[k] for k in after}
        # The machine's busy CPU seconds (all cores): the servers, clients, Postgres, the rest.
        result.cpu["machine"] = (
            (busy_after - busy_before) / (total_after - total_before) * result.busy * CORES
        )
        counters, received = await pool.collect()
        result.counters = counters
        analyse(result, sent, received)
        return result
    finally:
        await asyncio.to_thread(pool.close)


def profile(
    server: Server, args: argparse.Namespace, name: str, seconds: float
) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the Chronicle server through the measured window, with `--profile`."""
    if not args.profile or name != "chronicle":
        return None
    output = f"{args.profile}-{server.process.pid}.txt"
    print(f"  profiling the server into {output}", flush=True)
    command = ["py-spy", "record", "--format", "raw", "-d", str(max(1, int(seconds))), "-o", output]
    return subprocess.Popen(
        [*command, "-p", str(server.process.pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def document(fields: str) -> str:
    return f'subscription {{ events(streamType: "{STREAM_TYPE}") {{ {fields} }} }}'


# --------------------------------------------------------------------------- the run


def chronicle_writer(store: Any) -> Writer:
    """Appends through the event store, one new stream per command; time zero is the commit."""
    from store.events import NewEvent, StreamAppend, StreamState

    sequence = iter(range(1, 2**62))

    async def emit() -> tuple[int, float]:
        stream = f"fanout-{uuid.uuid4()}"
        command_id = str(uuid.uuid4())
        written = await store.append(
            [
                StreamAppend(
                    stream_id=stream,
                    stream_type=STREAM_TYPE,
                    expected=StreamState.NO_STREAM,
                    events=[NewEvent(event_type="Ticked", data={"n": next(sequence)})],
                )
            ],
            metadata={"commandId": command_id, "actor": "bench"},
            command_id=command_id,
        )
        return written.events[0].position, time.monotonic()

    async def marker() -> int:
        return (await emit())[0]

    async def window(rate: float, count: int) -> dict[int, float]:
        return await paced(rate, count, emit)

    return Writer(marker=marker, window=window)


def baseline_writer(client: httpx.AsyncClient) -> Writer:
    """Drives the baseline's in-process producer; time zero is each event's schedule slot."""
    sequence = iter(range(1, 2**62))

    async def marker() -> int:
        position = next(sequence)
        (await client.post("/emit", params={"position": position})).raise_for_status()
        return position

    async def window(rate: float, count: int) -> dict[int, float]:
        first = next(sequence)
        params = {"rate": rate, "count": count, "first": first}
        (await client.post("/produce", params=params)).raise_for_status()
        await asyncio.sleep(count / rate)
        response = await client.get("/sent")
        response.raise_for_status()
        for _ in range(count - 1):
            next(sequence)
        return {int(k): v for k, v in response.json().items()}

    return Writer(marker=marker, window=window)


def report_header() -> None:
    print(
        f"{'':<10} {'subs':>5} {'events':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'lost':>5} {'dup':>4} {'fell':>4} {'deliv/s':>7} | {'server':>6} {'us/msg':>6} "
        f"{'kernel':>6} {'clients':>7} {'us/msg':>6} {'writer':>6} {'machine':>7} | "
        f"{'KB/sub':>6} load"
    )


def report(result: Result) -> None:
    """One line; CPU in cores (averaged from the first write until all was delivered) and in
    microseconds of CPU per delivered message."""
    delivering = max(result.last_receipt - result.window_start, 1e-9)
    per_message = 1e6 / max(result.delivered, 1)
    cpu = {k: v / max(result.busy, 1e-9) for k, v in result.cpu.items()}
    kernel = result.cpu["server kernel"] / max(result.cpu["server"], 1e-9)
    print(
        f"{result.name:<10} {result.subscribers:>5} {result.written:>6} "
        f"{result.percentile(0.5):>8.1f} {result.p99:>8.1f} {result.percentile(1.0):>8.1f} "
        f"{result.lost:>5} {result.duplicates:>4} {result.counters.get('fell_behind', 0):>4} "
        f"{result.delivered / delivering:>7.0f} | {cpu['server']:>6.2f} "
        f"{result.cpu['server'] * per_message:>6.0f} {kernel:>6.0%} {cpu['clients']:>7.2f} "
        f"{result.cpu['clients'] * per_message:>6.0f} {cpu['writer']:>6.2f} "
        f"{cpu['machine']:>7.2f} | {result.kb_per_subscriber:>6.1f} {result.load}",
        flush=True,
    )
    odd = {k: v for k, v in result.counters.items() if k in ("failed", "closed", "other") and v}
    if odd or result.counters.get("problem"):
        print(f"{'':<10} client notes: {odd} {result.counters.get('problem', '')}", flush=True)
    if result.lost:
        print(
            f"{'':<10} {result.lost} deliveries still missing {result.drain:.0f}s after the "
            f"last write",
            flush=True,
        )


def legend() -> None:
    print(
        f"(deliv/s: deliveries per second from the first write to the last receipt; CPU in "
        f"cores, averaged from the first write until everything arrived, and in us of CPU per "
        f"delivered message; kernel: the server's share of it in the kernel (socket writes); "
        f"machine: all {CORES} cores, Postgres and anything else included; "
        f"KB/sub: the server's resident memory per subscriber, all connected and live, before "
        f"the window; load: the machine's load averages when the window started)"
    )


def deliveries_per_cpu_second(result: Result) -> float:
    """Messages delivered per second of the server's CPU (all its processes)."""
    return result.delivered / max(result.cpu["server"], 1e-9)


@contextlib.asynccontextmanager
async def fresh_database(server_url: str) -> AsyncGenerator[str, None]:
    from store.database import create_engine
    from store.migrations import upgrade

    name = f"chronicle_bench_{uuid.uuid4().hex[:8]}"
    base = server_url.rsplit("/", 1)[0]
    admin = await asyncpg.connect(f"{base}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    try:
        engine = create_engine(url, pool_size=2)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        yield url
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def run_chronicle(
    url: str,
    writer: Writer,
    args: argparse.Namespace,
    subscribers: int,
    seconds: float,
    workers: int = 1,
) -> Result:
    name = "chronicle" if workers == 1 else f"chron x{workers}"
    async with running(chronicle_server(url, args.buffer, workers)) as server:
        return await measure(name, server, writer, args, subscribers, seconds)


async def run_baseline(args: argparse.Namespace, subscribers: int, seconds: float) -> Result:
    async with (
        running(baseline_server()) as server,
        httpx.AsyncClient(base_url=server.http_url, timeout=None) as client,
    ):
        return await measure(
            "baseline", server, baseline_writer(client), args, subscribers, seconds
        )


async def compare(url: str, writer: Writer, args: argparse.Namespace) -> Result:
    """The baseline and Chronicle with the same subscribers; Chronicle's result."""
    baseline = await run_baseline(args, args.subscribers, args.seconds)
    chronicle = await run_chronicle(url, writer, args, args.subscribers, args.seconds, args.workers)
    print()
    report_header()
    report(baseline)
    report(chronicle)
    legend()
    print(
        f"chronicle p99 {chronicle.p99:.1f} ms (target < {TARGET_P99_MS:g}), ratio to the "
        f"baseline's p99 {chronicle.p99 / baseline.p99:.2f} (target <= {TARGET_RATIO:g}), "
        f"events lost {chronicle.lost} (target 0)",
        flush=True,
    )
    ours, bare = deliveries_per_cpu_second(chronicle), deliveries_per_cpu_second(baseline)
    print(
        f"deliveries per server CPU-second: chronicle {ours:.0f}, baseline {bare:.0f}, ratio "
        f"{ours / bare:.2f} (target >= {CPU_RATIO_TARGET:g}); server memory per subscriber "
        f"{chronicle.kb_per_subscriber:.1f} KB (target < {MEMORY_TARGET_KB:g}), baseline "
        f"{baseline.kb_per_subscriber:.1f} KB",
        flush=True,
    )
    return chronicle


async def capacity(
    url: str, writer: Writer, args: argparse.Namespace, known: Result | None
) -> None:
    """Chronicle's p99 per subscriber count and number of workers, and the largest count each
    holds at p99 < 250 ms with nothing lost."""
    sweep = sorted({int(n) for n in args.sweep.split(",") if n.strip()})
    workers = sorted({int(n) for n in args.sweep_workers.split(",") if n.strip()})
    print(f"\ncapacity sweep (chronicle, {args.sweep_seconds:g}s each):", flush=True)
    results: dict[tuple[int, int], Result] = {}
    for processes in workers:
        for count in sweep:
            if (
                known is not None
                and (known.subscribers, args.workers) == (count, processes)
                and known.seconds == args.sweep_seconds
            ):
                results[processes, count] = known  # the comparison's run is this measurement
            else:
                results[processes, count] = await run_chronicle(
                    url, writer, args, count, args.sweep_seconds, processes
                )
    print()
    report_header()
    for key in sorted(results):
        report(results[key])
    legend()
    for processes in workers:
        held = [
            n
            for (w, n), r in results.items()
            if w == processes and r.p99 < CAPACITY_P99_MS and r.lost == 0
        ]
        verdict = f"{max(held)} subscribers" if held else "none of the counts tried"
        print(
            f"{processes} worker(s) hold {verdict} at {args.rate:g} ev/s with p99 < "
            f"{CAPACITY_P99_MS:g} ms and nothing lost (of {', '.join(map(str, sweep))})",
            flush=True,
        )


async def main(args: argparse.Namespace) -> None:
    from store.database import create_engine
    from store.event_store import EventStore

    raise_open_file_limit()
    print(
        f"fan-out: {args.subscribers} subscribers, {args.rate:g} ev/s for {args.seconds:g}s, "
        f"selection {{ {args.fields} }}, {args.clients} {args.client} client process(es), "
        f"{CORES} cores, "
        f"load {load()}",
        flush=True,
    )
    async with fresh_database(args.server) as url:
        engine = create_engine(url, pool_size=4)
        store = EventStore(engine)
        writer = chronicle_writer(store)
        try:
            chronicle = None if args.sweep_only else await compare(url, writer, args)
            if args.sweep.strip():
                await capacity(url, writer, args, chronicle)
        finally:
            await store.close()
            await engine.dispose()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=50.0, help="events written per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument(
        "--sweep",
        default="50,100,150,250,500,1000",
        help="subscriber counts ('' to skip the sweep)",
    )
    parser.add_argument("--sweep-seconds", type=float, default=None, help="default: --seconds")
    parser.add_argument(
        "--sweep-only", action="store_true", help="skip the comparison with the baseline"
    )
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument(
        "--client",
        choices=["node", "python"],
        default="node",
        help="the subscribers' client: node (ws, benchmarks/node) or python (websockets)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="chronicle serve --workers, for the comparison"
    )
    parser.add_argument(
        "--sweep-workers", default="1", help="worker counts of the capacity sweep, e.g. 1,2"
    )
    parser.add_argument("--fields", default="position", help="the subscription's selection set")
    parser.add_argument(
        "--buffer", type=int, default=DEFAULT_BUFFER, help="CHRONICLE_SUBSCRIBER_BUFFER"
    )
    parser.add_argument(
        "--drain", type=float, default=15.0, help="stop waiting after this long with no delivery"
    )
    parser.add_argument(
        "--drain-limit", type=float, default=600.0, help="wait at most this long for delivery"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 50 subscribers, 5 s, sweep 25,50"
    )
    parser.add_argument(
        "--server",
        default=os.environ.get(
            "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--profile", help="py-spy raw stacks of the Chronicle server's windows, to FILE-<pid>.txt"
    )
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="clients offer permessage-deflate, as browsers do, and Chronicle accepts it "
        "(CHRONICLE_WS_COMPRESSION=true; the baseline's uvicorn accepts it by default)",
    )
    parser.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.subscribers, args.seconds, args.sweep = 50, 5.0, "25,50"
    if args.deflate:
        os.environ[DEFLATE] = "1"  # for the client processes, and the server's settings
    if args.sweep_seconds is None:
        args.sweep_seconds = args.seconds
    return args


def _entry() -> None:
    args = parse()
    if args.serve_baseline:
        serve_baseline(args.port)
    else:
        asyncio.run(main(args))


if __name__ == "__main__":
    _entry()
