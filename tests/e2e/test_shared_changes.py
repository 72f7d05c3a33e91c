"""`postChanged` and `orderChanged` share each push among subscribers of one shape (document,
variables, permission scope), and only among them: what each caller reads of a pushed post or
order is what it would read alone (api/fanout.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import websockets

from tests.e2e.conftest import Server
from tests.e2e.live import raw_socket
from tests.e2e.test_auth import done, mutate
from tests.e2e.test_privacy import ADMIN, place_order, secured, someone

__all__ = ["secured"]  # the module's server requires tokens

POST_CHANGED = (
    "subscription($id: ID!) { postChanged(postId: $id) { version likeCount "
    "author { name email } } }"
)
ORDER_CHANGED = (
    "subscription($id: ID!) { orderChanged(orderId: $id) { version status customer { email } } }"
)


class Watcher:
    """One graphql-transport-ws connection with one operation, keeping its `next` frames as
    they came."""

    def __init__(self, bearer: str | None, operation_id: str) -> None:
        self.bearer = bearer
        self.operation_id = operation_id
        self.frames: list[str] = []
        self.arrived = asyncio.Event()
        self.socket: websockets.ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self, server: Server, document: str, **variables: Any) -> None:
        self.socket = await raw_socket(server)
        init: dict[str, Any] = {"type": "connection_init"}
        if self.bearer is not None:
            init["payload"] = {"Authorization": f"Bearer {self.bearer}"}
        await self.socket.send(json.dumps(init))
        assert json.loads(await self.socket.recv())["type"] == "connection_ack"
        payload = {"query": document, "variables": variables}
        subscribe = {"id": self.operation_id, "type": "subscribe", "payload": payload}
        await self.socket.send(json.dumps(subscribe))
        self.task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        assert self.socket is not None
        async for text in self.socket:
            message = json.loads(text)
            if message["type"] == "ping":
                await self.socket.send(json.dumps({"type": "pong"}))
            elif message["type"] == "next":
                assert message["id"] == self.operation_id, message
                self.frames.append(str(text))
                self.arrived.set()

    @property
    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(frame)["payload"] for frame in self.frames]

    async def until(self, field: str, condition: Callable[[dict[str, Any]], bool]) -> None:
        """Until a pushed `field` meets `condition`."""
        async with asyncio.timeout(20):
            while not any(condition(p["data"][field]) for p in self.payloads):
                self.arrived.clear()
                await self.arrived.wait()

    def frames_without_id(self) -> list[str]:
        """The frames with this operation's id (as JSON) in place of one placeholder."""
        spelled = json.dumps(self.operation_id)
        return [frame.replace(spelled, '"ID"', 1) for frame in self.frames]

    def by_version(self, field: str) -> dict[int, str]:
        """The frames without their id, by the version of the state each pushed."""
        return {
            json.loads(frame)["payload"]["data"][field]["version"]: frame
            for frame in self.frames_without_id()
        }

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.socket is not None:
            await self.socket.close()


def same_pushes(first: Watcher, second: Watcher, field: str, last: int) -> None:
    """Both got the state of version `last`, and the same frame (but for the id) for every
    version both got: nothing tells when a subscription is live (no first push), so one may
    start a change later than the other."""
    mine, theirs = first.by_version(field), second.by_version(field)
    assert last in mine.keys() & theirs.keys(), (mine, theirs)
    for version in mine.keys() & theirs.keys():
        assert mine[version] == theirs[version], version


def codes(payload: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in payload.get("errors", [])]


async def test_post_pushes_are_shared_within_a_scope_and_never_across_scopes(
    secured: Server,
) -> None:
    author, other = someone(secured), someone(secured)
    created = mutate(secured, author.bearer, "createPost", authorId=author.user_id, message="Hi")
    post_id = done(created)["streamId"]
    callers = {"author": author.bearer, "other": other.bearer, "anonymous": None, "admin": ADMIN}
    # Two connections for each caller, so that each scope's pushes are shared; awkward ids.
    watchers = {
        name: [Watcher(bearer, f'{name}-{n}-"\\é') for n in range(2)]
        for name, bearer in callers.items()
    }
    try:
        for pair in watchers.values():
            for watcher in pair:
                await watcher.start(secured, POST_CHANGED, id=post_id)
        for _ in range(3):
            liker = someone(secured)
            done(mutate(secured, liker.bearer, "likePost", postId=post_id, userId=liker.user_id))
        for pair in watchers.values():
            for watcher in pair:
                await watcher.until("postChanged", lambda post: post["likeCount"] == 3)
    finally:
        await asyncio.gather(*(w.close() for pair in watchers.values() for w in pair))

    for name, (first, second) in watchers.items():
        # One scope, the same frames but for the id; each frame carries its own operation's id.
        same_pushes(first, second, "postChanged", 4)
        final = first.payloads[-1]
        assert final["data"]["postChanged"]["likeCount"] == 3
        if name in ("author", "admin"):
            assert "errors" not in final, final
            assert final["data"]["postChanged"]["author"] == {
                "name": author.name,
                "email": author.email,
            }
        else:  # the rest of the post stands; the email (String!) is refused, nulling its User
            assert final["data"]["postChanged"]["author"] is None
            assert codes(final) == ["FORBIDDEN" if name == "other" else "UNAUTHENTICATED"]
            assert final["errors"][0]["path"] == ["postChanged", "author", "email"]
    # Every scope got each version's own state (created at 1, a like each after), in order.
    for pair in watchers.values():
        for watcher in pair:
            posts = [p["data"]["postChanged"] for p in watcher.payloads]
            assert all(post["likeCount"] == post["version"] - 1 for post in posts), posts
            versions = [post["version"] for post in posts]
            assert versions == sorted(set(versions)), versions


async def test_order_pushes_reach_its_owner_and_admins_each_with_what_they_may_read(
    secured: Server,
) -> None:
    owner = someone(secured)
    order_id, _ = place_order(secured, owner)
    watchers = [Watcher(owner.bearer, f"owner-{n}") for n in range(2)]
    watchers += [Watcher(ADMIN, f"admin-{n}") for n in range(2)]
    try:
        for watcher in watchers:
            await watcher.start(secured, ORDER_CHANGED, id=order_id)
        done(mutate(secured, owner.bearer, "cancelOrder", orderId=order_id, reason="not now"))
        for watcher in watchers:
            await watcher.until("orderChanged", lambda order: order["status"] == "CANCELLED")
    finally:
        await asyncio.gather(*(w.close() for w in watchers))
    for watcher in watchers:
        final = watcher.payloads[-1]
        assert "errors" not in final, final
        assert final["data"]["orderChanged"]["customer"]["email"] == owner.email
    last = watchers[0].payloads[-1]["data"]["orderChanged"]["version"]
    same_pushes(watchers[0], watchers[1], "orderChanged", last)
    same_pushes(watchers[2], watchers[3], "orderChanged", last)
