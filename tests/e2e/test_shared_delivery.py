"""Subscribers of one `events` shape (document, variables, permission scope) share each event's
execution and serialised frame, written by each websocket operation with its own id spliced in
(api/fanout.py). Proofs, on real servers with real websocket clients, that sharing leaks
nothing and changes nothing a subscriber sees: users of one document see only their own
streams and admins all; every subscriber of a shape, on either protocol and over HTTP (where
strawberry still sends), gets the same payloads, each frame with its own id; one that stops
reading is ended alone and resumes exactly; one that is completed gets nothing more.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from store.event_store import EventStore
from store.events import FEED_START, NewEvent, StreamAppend, StreamState
from tests.e2e.conftest import Server, start_server
from tests.e2e.live import LEGACY_WS, TRANSPORT_WS, append_many, raw_socket, stalled_socket
from tests.e2e.node_clients import streamed
from tests.e2e.observed import Scrape
from tests.e2e.test_auth import done, mutate, token
from tests.e2e.test_http_subscriptions import feed_after, payloads
from tests.e2e.test_privacy import ADDRESS, Someone, all_events, secured, someone

__all__ = ["secured"]  # the module's server that requires tokens

AWKWARD_IDS = ('a "quoted" \\ id, é', "ünïcødé ✓ 😀 \u2028 '\\\"}")
"""Operation ids that JSON must escape, on one connection: a quote, a backslash, non-ASCII."""


def events_of(after: bool = True, fields: str = "position streamId version type") -> str:
    arguments = "after: $after, streamType: $streamType" if after else "streamType: $streamType"
    variables = "$after: Position, $streamType: String" if after else "$streamType: String"
    return f"subscription({variables}) {{\n  events({arguments}) {{ {fields} }}\n}}"


class Connection:
    """One raw websocket connection of either protocol, its operations' `next` (or `data`)
    frames kept as they came, by the id they carry; other messages with an id (`complete`,
    `error`) kept apart. Pings are answered, keep-alives skipped."""

    def __init__(self, socket: websockets.ClientConnection, protocol: str) -> None:
        self.socket = socket
        self.protocol = protocol
        self.frames: dict[str, list[str]] = {}
        self.others: list[dict[str, Any]] = []
        self.pongs = 0
        self.arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, server: Server, protocol: str = TRANSPORT_WS, bearer: str | None = None
    ) -> Connection:
        socket = await raw_socket(server, protocol)
        init: dict[str, Any] = {"type": "connection_init"}
        if bearer is not None:
            init["payload"] = {"Authorization": f"Bearer {bearer}"}
        await socket.send(json.dumps(init))
        async with asyncio.timeout(10):
            while (message := json.loads(await socket.recv()))["type"] == "ka":
                pass
        assert message["type"] == "connection_ack", message
        return cls(socket, protocol)

    async def _read(self) -> None:
        try:
            async for text in self.socket:
                message = json.loads(text)
                kind = message["type"]
                if kind == "ping":
                    await self.socket.send(json.dumps({"type": "pong"}))
                elif kind == "pong":
                    self.pongs += 1
                elif kind in ("next", "data"):
                    self.frames.setdefault(message["id"], []).append(str(text))
                elif kind != "ka":
                    self.others.append(message)
                self.arrived.set()
        finally:
            self.arrived.set()

    async def subscribe(self, operation_id: str, document: str, **variables: Any) -> None:
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": document, "variables": variables}
        await self.socket.send(json.dumps({"type": kind, "id": operation_id, "payload": payload}))

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(message))

    def payloads(self, operation_id: str) -> list[dict[str, Any]]:
        return [json.loads(frame)["payload"] for frame in self.frames.get(operation_id, [])]

    def events(self, operation_id: str) -> list[dict[str, Any]]:
        """The pushed events of an operation; a push with errors fails the test."""
        pushed = self.payloads(operation_id)
        assert all(set(p) == {"data"} for p in pushed), [p for p in pushed if "errors" in p]
        return [p["data"]["events"] for p in pushed]

    def positions(self, operation_id: str) -> list[int]:
        return [int(event["position"]) for event in self.events(operation_id)]

    async def until(self, condition: Callable[[], bool], within: float = 20) -> None:
        async with asyncio.timeout(within):
            while not condition():
                if self._reader.done():
                    raise AssertionError(f"the connection ended: {self._reader!r}")
                self.arrived.clear()
                await self.arrived.wait()

    async def until_has(self, operation_id: str, *positions: int, within: float = 20) -> None:
        await self.until(lambda: set(positions) <= set(self.positions(operation_id)), within)

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self.socket.close()


async def close_all(connections: list[Connection]) -> None:
    await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)


def same_json(value: Any) -> str:
    """`value` as JSON text, key order kept: equal texts are equal values, fields in order."""
    return json.dumps(value, ensure_ascii=False)


async def feed_of(store: EventStore, kind: str, after: int) -> list[int]:
    """The positions of `kind`'s events after position `after` (which need not be of `kind`),
    in the store's feed order."""
    feed = await store.read_feed(FEED_START, limit=100_000, stream_type=kind)
    checkpoint = await store.checkpoint_at(after)
    assert checkpoint is not None
    return [e.position for e in feed if e.checkpoint > checkpoint]


async def head(store: EventStore) -> int:
    """A position to subscribe `after`: that of an event written now (of no test's kind)."""
    (position,) = await append_many(store, f"Mark{uuid.uuid4().hex[:8]}", 1, 1)
    return position


# ---------------------------------------------------------------- scopes


SCOPED = """subscription($after: Position) {
  events(after: $after) { position streamId type data }
}"""


async def test_one_document_and_variables_in_different_scopes_show_each_user_only_their_own(
    secured: Server,
) -> None:
    ada, bob = someone(secured), someone(secured)
    start = max(int(ada.position), int(bob.position))  # the JSON is a string
    admin = token(f"root-{uuid.uuid4().hex[:6]}", "admin")
    # Several connections per scope, so that each scope's pushes are shared: Ada's with two
    # different tokens of hers (one scope), admins of two subjects (one scope).
    bearers = {
        "ada": [ada.bearer, ada.bearer, token(ada.subject, ttl=900)],
        "bob": [bob.bearer, bob.bearer],
        "admin": [admin, admin, token(f"root-{uuid.uuid4().hex[:6]}", "admin")],
    }
    assert bearers["ada"][0] != bearers["ada"][2]
    connections = {
        name: [await Connection.open(secured, bearer=b) for b in tokens]
        for name, tokens in bearers.items()
    }
    try:
        for group in connections.values():
            for connection in group:
                await connection.subscribe("1", SCOPED, after=str(start))

        async def act(who: Someone, mutation: str, **fields: Any) -> dict[str, Any]:
            return done(await asyncio.to_thread(mutate, secured, who.bearer, mutation, **fields))

        # Interleaved: each user's streams, each writing to the other's post (an event of the
        # post's owner's stream), and a third user only admins see (with her email).
        owned: dict[str, set[str]] = {"ada": {ada.user_id}, "bob": {bob.user_id}}
        for name, who in (("ada", ada), ("bob", bob)):
            made = await act(who, "createPost", authorId=who.user_id, message=f"{name}'s")
            owned[name].add(made["streamId"])
        (adas_post,) = owned["ada"] - {ada.user_id}
        (bobs_post,) = owned["bob"] - {bob.user_id}
        carol = None
        for n in range(4):
            for name, who in (("ada", ada), ("bob", bob)):
                order = await act(
                    who, "createOrder", customerId=who.user_id, shippingAddress=ADDRESS
                )
                owned[name].add(order["streamId"])
                if n % 2 == 0:
                    await act(who, "cancelOrder", orderId=order["streamId"], reason=f"no {n}")
            await act(bob, "addComment", postId=adas_post, authorId=bob.user_id, text=f"b{n}")
            await act(ada, "addComment", postId=bobs_post, authorId=ada.user_id, text=f"a{n}")
            if n == 1:
                carol = await asyncio.to_thread(someone, secured)
        assert carol is not None
        liked = await act(bob, "likePost", postId=adas_post, userId=bob.user_id)
        last = int(liked["position"])

        def upto_last(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [e for e in events if start < int(e["position"]) <= last]

        # Once pushed, the gap-safe feed the query reads holds all of it too.
        for connection in connections["admin"]:
            await connection.until_has("1", last)
        log = upto_last(await asyncio.to_thread(all_events, admin, secured))
        assert int(log[-1]["position"]) == last
        expected = {
            "admin": [int(e["position"]) for e in log],
            **{
                name: [int(e["position"]) for e in log if e["streamId"] in streams]
                for name, streams in owned.items()
            },
        }
        assert set(expected["ada"]).isdisjoint(expected["bob"])
        assert (len(expected["ada"]), len(expected["bob"])) == (12, 11)
        assert len(expected["admin"]) > len(expected["ada"]) + len(expected["bob"])  # Carol's
        for name, group in connections.items():
            for connection in group:
                await connection.until_has("1", expected[name][-1])
    finally:
        await asyncio.gather(*(close_all(group) for group in connections.values()))

    by_position = {int(e["position"]): e for e in connections["admin"][0].events("1")}
    for name, group in connections.items():
        for connection in group:
            assert set(connection.frames) == {"1"}, name
            got = upto_last(connection.events("1"))
            # Exactly their own streams' events, in the log's order; Bob's comment on Ada's
            # post is Ada's to see, and Carol (and her email) nobody's but the admins'.
            assert [int(e["position"]) for e in got] == expected[name], name
            if name != "admin":
                assert {e["streamId"] for e in connection.events("1")} <= owned[name], name
                assert carol.email not in "".join(connection.frames["1"]), name
            # What each sees of an event is what an admin sees of it.
            for event in got:
                assert same_json(event) == same_json(by_position[int(event["position"])])
        # One scope, one sequence of payloads.
        first = same_json(upto_last(group[0].events("1")))
        assert all(same_json(upto_last(c.events("1"))) == first for c in group), name
    # The `events` query of the same log agrees with each user's pushes.
    for who, name in ((ada, "ada"), (bob, "bob")):
        queried = upto_last(await asyncio.to_thread(all_events, who.bearer, secured))
        assert [int(e["position"]) for e in queried] == expected[name], name


# ---------------------------------------------------------------- one shape, many subscribers


AWKWARD_DATA = {
    "text": 'a "quoted" word, a back\\slash, é, ✓, 😀, \u2028, a\ttab, </script>',
    "n": 1.5,
    "big": 2**53 + 1,
    "nested": [None, True, {"": [], "ü": "\\u00fc"}],
}
ALL_FIELDS = (
    "position eventId streamId streamType version type schemaVersion data metadata recordedAt"
)


async def write_awkward(store: EventStore, kind: str, writers: int, each: int) -> list[int]:
    """Events of `kind` with data JSON must escape, from concurrent writers; their positions."""

    async def writer(w: int) -> list[int]:
        return [await append_awkward(w, i) for i in range(each)]

    async def append_awkward(w: int, i: int) -> int:
        result = await store.append(
            [
                StreamAppend(
                    stream_id=f"{kind}-{w}",
                    stream_type=kind,
                    expected=StreamState.ANY,
                    events=[NewEvent(event_type="Noted", data={**AWKWARD_DATA, "i": i})],
                )
            ]
        )
        return result.position

    return [p for ps in await asyncio.gather(*(writer(w) for w in range(writers))) for p in ps]


async def test_every_subscriber_of_a_shape_gets_strawberrys_payloads_each_with_its_own_id(
    server: Server, store: EventStore
) -> None:
    kind = f"Shape{uuid.uuid4().hex[:8]}"
    document = events_of(fields=ALL_FIELDS)
    variables = {"after": str(await head(store)), "streamType": kind}
    singles = [await Connection.open(server) for _ in range(3)]
    pair = await Connection.open(server)
    operations = [(c, str(n)) for n, c in enumerate(singles)] + [(pair, i) for i in AWKWARD_IDS]
    over_http: list[dict[str, Any]] = []
    http_done = asyncio.Event()

    async def read_http() -> None:
        payload = {"query": document, "variables": variables}
        async with (
            httpx.AsyncClient(timeout=30) as client,
            streamed(client, server.graphql_url, payload) as response,
        ):
            async for part in payloads(response):
                over_http.append(part["payload"])
                http_done.set()

    http = asyncio.create_task(read_http())
    try:
        for connection, operation_id in operations:
            await connection.subscribe(operation_id, document, **variables)
        written = await write_awkward(store, kind, 3, 10)
        for connection, operation_id in operations:
            await connection.until_has(operation_id, *written)
        # Once pushed, the gap-safe feed holds all of it too.
        feed = await feed_of(store, kind, int(variables["after"]))
        assert sorted(feed) == sorted(written)
        async with asyncio.timeout(20):
            while len(over_http) < len(feed):
                assert not http.done(), http
                http_done.clear()
                await http_done.wait()
    finally:
        http.cancel()
        await asyncio.gather(http, return_exceptions=True)
        await close_all([*singles, pair])

    # Strawberry's payloads over HTTP: exactly the feed, each a result without errors.
    assert [int(p["data"]["events"]["position"]) for p in over_http] == feed
    assert all(set(p) == {"data"} for p in over_http)
    assert over_http[0]["data"]["events"]["data"] == {**AWKWARD_DATA, "i": 0}
    strawberrys = same_json(over_http)
    for connection, operation_id in operations:
        assert connection.positions(operation_id) == feed
        # Each frame parses, names its own operation and nothing else; its payload is
        # strawberry's, field for field, in order.
        for frame in connection.frames[operation_id]:
            message = json.loads(frame)
            assert (message["id"], message["type"]) == (operation_id, "next")
            assert set(message) == {"id", "type", "payload"}
        assert same_json(connection.payloads(operation_id)) == strawberrys, operation_id
    assert set(pair.frames) == set(AWKWARD_IDS)
    assert not any(c.others for c in (*singles, pair))


async def test_legacy_and_transport_subscribers_of_a_shape_get_the_same_data(
    server: Server, store: EventStore
) -> None:
    kind = f"Protocols{uuid.uuid4().hex[:8]}"
    document = events_of()
    variables = {"after": str(await head(store)), "streamType": kind}
    legacy = [await Connection.open(server, LEGACY_WS) for _ in range(2)]
    transport = [await Connection.open(server, TRANSPORT_WS) for _ in range(2)]
    operations = [(legacy[0], "1"), (legacy[1], "1"), (legacy[1], AWKWARD_IDS[0])]
    operations += [(transport[0], "1"), (transport[1], AWKWARD_IDS[1])]
    try:
        for connection, operation_id in operations:
            await connection.subscribe(operation_id, document, **variables)
        written = await append_many(store, kind, 3, 10)
        for connection, operation_id in operations:
            await connection.until_has(operation_id, *written)
        feed = await feed_of(store, kind, int(variables["after"]))
        assert sorted(feed) == written
    finally:
        await close_all([*legacy, *transport])

    expected = same_json(operations[-1][0].payloads(operations[-1][1]))
    for connection, operation_id in operations:
        assert connection.positions(operation_id) == feed
        assert same_json(connection.payloads(operation_id)) == expected
        data = "data" if connection.protocol == LEGACY_WS else "next"
        for frame in connection.frames[operation_id]:
            message = json.loads(frame)
            assert (message["type"], message["id"]) == (data, operation_id)


# ---------------------------------------------------------------- one falls behind


WITH_DATA = events_of(after=False, fields="position data")


async def test_a_subscriber_that_stops_reading_is_ended_alone_and_resumes_exactly(
    tmp_path: Path, e2e_database_url: str, store: EventStore
) -> None:
    server = start_server(
        {
            "DATABASE_URL": e2e_database_url,
            "CHRONICLE_SUBSCRIBER_BUFFER": "100",
            "CHRONICLE_RUN_PROJECTIONS": "false",  # the shared server runs them on this database
        },
        tmp_path / "slow.log",
    )
    kind = f"Behind{uuid.uuid4().hex[:8]}"
    peers = [await Connection.open(server) for _ in range(2)]
    peers.append(await Connection.open(server, LEGACY_WS))
    slow = await stalled_socket(server)
    resumed: Connection | None = None
    slow_got: list[str] = []  # its `next` frames, as they came

    async def slow_has(position: int) -> None:
        while True:
            message = json.loads(text := await slow.recv())
            if message["type"] == "next":
                slow_got.append(str(text))
                if int(message["payload"]["data"]["events"]["position"]) == position:
                    return

    try:
        for peer in peers:
            await peer.subscribe("p", WITH_DATA, streamType=kind)
        await slow.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "id": "s",
                    "payload": {"query": WITH_DATA, "variables": {"streamType": kind}},
                }
            )
        )
        # Live once a marker written now reaches all four (then the slow one stops reading).
        for _ in range(30):
            (marker,) = await append_many(store, kind, 1, 1)
            try:
                async with asyncio.timeout(2):
                    await slow_has(marker)
                    for peer in peers:
                        await peer.until_has("p", marker)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("the subscriptions never went live")

        # More than the slow connection's socket buffers (some 4 MiB) and its subscriber
        # buffer hold, at a pace its peers keep up with: all of it reaches them while it is
        # stuck, and so do events written one by one after it, each soon.
        flood: list[int] = []
        for _ in range(16):
            # In rounds its peers take in before the next: no batch of the live feed outgrows
            # a peer's buffer however busy the machine.
            written = await append_many(store, kind, 2, 25, padding=16_000)
            for peer in peers:
                await peer.until_has("p", *written, within=30)
            flood += written
        loop = asyncio.get_running_loop()
        after_flood = []
        for _ in range(5):
            (position,) = await append_many(store, kind, 1, 1)
            written = loop.time()
            for peer in peers:
                await peer.until_has("p", position, within=10)
            assert loop.time() - written < 5
            after_flood.append(position)

        # The peers got the whole log from the marker on, in its order, and all alike.
        log = await feed_after(store, kind, marker)
        assert log[-1] == after_flood[-1]
        reference = same_json(peers[0].payloads("p"))
        for peer in peers:
            got = peer.positions("p")
            assert got[got.index(marker) + 1 :] == log
            assert same_json(peer.payloads("p")) == reference
            assert set(peer.frames) == {"p"} and not peer.others

        # Reading again, the slow one finds what was sent, then where to resume, then the end.
        sent: list[int] = []
        async with asyncio.timeout(30):
            while True:
                message = json.loads(text := await slow.recv())
                if message["type"] == "ping":
                    await slow.send(json.dumps({"type": "pong"}))
                    continue
                assert (message["type"], message["id"]) == ("next", "s"), message
                if "errors" in message["payload"]:
                    break
                slow_got.append(str(text))
                sent.append(int(message["payload"]["data"]["events"]["position"]))
            error = message["payload"]["errors"][0]
            assert error["extensions"]["code"] == "FELL_BEHIND", message
            while (message := json.loads(await slow.recv()))["type"] == "ping":
                await slow.send(json.dumps({"type": "pong"}))
            assert message == {"id": "s", "type": "complete"}
        resume_after = error["extensions"]["resumeAfter"]
        assert resume_after == str(sent[-1] if sent else marker)
        assert len(sent) < len(flood), "it fell behind before the end"
        assert sent == log[: len(sent)], "what it was sent has no gap"
        # What it was sent is what its peers were sent.
        peer_payloads = {
            int(p["data"]["events"]["position"]): same_json(p) for p in peers[0].payloads("p")
        }
        for frame in slow_got:
            payload = json.loads(frame)["payload"]
            assert same_json(payload) == peer_payloads[int(payload["data"]["events"]["position"])]
        assert Scrape(server.url).value("chronicle_subscriptions_fell_behind_total") == 1

        # Resuming there gives exactly the store's log after it.
        resumed = await Connection.open(server)
        await resumed.subscribe(
            "r", events_of(fields="position data"), after=resume_after, streamType=kind
        )
        await resumed.until_has("r", log[-1], within=30)
        assert resumed.positions("r") == await feed_after(store, kind, int(resume_after))
        assert sent + resumed.positions("r") == log
    finally:
        await close_all(peers if resumed is None else [*peers, resumed])
        await slow.close()
        server.stop()
    assert "Traceback" not in server.output(), server.output()


# ---------------------------------------------------------------- one is completed


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_operation_the_client_completes_gets_nothing_more_while_its_peers_go_on(
    server: Server, store: EventStore, protocol: str
) -> None:
    kind = f"Completed{uuid.uuid4().hex[:8]}"
    document = events_of()
    variables = {"after": str(await head(store)), "streamType": kind}
    both = await Connection.open(server, protocol)  # "gone" and "kept" on one connection
    peer = await Connection.open(server, protocol)
    operations = [(both, "gone"), (both, "kept"), (peer, "peer")]
    try:
        for connection, operation_id in operations:
            await connection.subscribe(operation_id, document, **variables)
        first = await append_many(store, kind, 2, 5)
        for connection, operation_id in operations:
            await connection.until_has(operation_id, *first)

        # Once the server has handled the complete (it answers the ping after it; the legacy
        # protocol confirms the stop), nothing more comes for that id.
        if protocol == TRANSPORT_WS:
            await both.send({"type": "complete", "id": "gone"})
            await both.send({"type": "ping"})
            await both.until(lambda: both.pongs == 1)
        else:
            await both.send({"type": "stop", "id": "gone"})
            await both.until(lambda: {"type": "complete", "id": "gone"} in both.others)
        stopped_at = len(both.frames["gone"])
        others_at = len(both.others)

        second = await append_many(store, kind, 2, 10)
        for connection, operation_id in operations[1:]:
            await connection.until_has(operation_id, *second)
        assert len(both.frames["gone"]) == stopped_at
        assert len(both.others) == others_at

        # The id, free again, starts afresh: each event once, none of the old operation's.
        again = (await feed_of(store, kind, int(variables["after"])))[-1]
        await both.subscribe("gone", document, after=str(again), streamType=kind)
        third = await append_many(store, kind, 2, 10)
        for connection, operation_id in operations:
            await connection.until_has(operation_id, *third)
        feed = await feed_of(store, kind, int(variables["after"]))
        assert sorted(feed) == sorted(first + second + third)
    finally:
        await close_all([both, peer])

    for connection, operation_id in operations[1:]:
        assert connection.positions(operation_id) == feed
    renewed = both.positions("gone")[stopped_at:]
    assert renewed == feed[feed.index(again) + 1 :]
    assert sorted(renewed) == sorted(third)
    assert both.positions("gone")[:stopped_at] == feed[:stopped_at]
    assert set(both.frames) == {"gone", "kept"} and set(peer.frames) == {"peer"}
