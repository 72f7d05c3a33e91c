"""Live pushes over websockets: one execution and one serialisation per event and subscription
shape; per subscriber, only its operation id spliced into the frame, and the write.

A shape is all that decides what a subscriber is sent for an event:
- the parsed document: the document cache hands every sender of the same text the same parsed
  operation, whatever its spacing or wherever it came from (trusted documents included);
- the coerced variables;
- the permission scope, from the identity and access rules (`admin`, or `user:<subject>`),
  never the raw token: two tokens of one user share, two users never do.

Subscribers of one shape share the `next` frame's payload, serialised once per event; each
subscriber still has its own place in the live feed (its buffer, `FELL_BEHIND` with its own
`resumeAfter`, its catch-up with `after`), and its own filter of what it may read. A result with
an error is never shared: it takes strawberry's own way, where errors are masked and coded.

How a push reaches its socket: each websocket protocol's handler (api/view.py) runs an
operation in its own task, and sets `DELIVERY` there, the frame around the payload for that
operation's id. The subscription resolver, in that task, finds it and writes the frame itself,
rather than yielding to graphql-core and strawberry, which would execute, format and serialise
per subscriber. Where no `DELIVERY` is set (the HTTP multipart transport, a test calling the
schema), the resolver yields, and strawberry sends as usual.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from contextvars import ContextVar
from inspect import isawaitable
from typing import Any, Generic, TypeVar

from graphql import ExecutionResult, OperationDefinitionNode
from graphql.execution import execute_subscription_event

from api.context import Info
from api.streaming import SUBSCRIBING

SHARED_EVENTS = 256
"""Events whose serialised payloads are kept, for every shape that was sent them."""


class Delivery:
    """Where an operation's results go, as text frames: the protocol's `next` (or `data`)
    message around a payload serialised already, byte for byte what strawberry would send."""

    __slots__ = ("_gone", "_prefix", "_send")

    def __init__(
        self, send: Callable[[str], Awaitable[None]], prefix: str, gone: Callable[[], bool]
    ) -> None:
        self._send = send
        self._prefix = prefix
        self._gone = gone

    async def push(self, payload: str) -> None:
        """Send one result, unless the operation is over (completed or stopped by the client)."""
        if not self._gone():
            await self._send(f"{self._prefix}{payload}}}")


def transport_ws_delivery(
    send: Callable[[str], Awaitable[None]], operation_id: str, gone: Callable[[], bool]
) -> Delivery:
    """graphql-transport-ws: `{"id": ..., "type": "next", "payload": ...}`."""
    return Delivery(send, f'{{"id": {json.dumps(operation_id)}, "type": "next", "payload": ', gone)


def legacy_ws_delivery(
    send: Callable[[str], Awaitable[None]], operation_id: str, gone: Callable[[], bool]
) -> Delivery:
    """Legacy graphql-ws: `{"type": "data", "id": ..., "payload": ...}`."""
    return Delivery(send, f'{{"type": "data", "id": {json.dumps(operation_id)}, "payload": ', gone)


T = TypeVar("T")


class Shared(Generic[T]):
    """One computation per key, whoever asks for it while it is kept (the last `size` keys):
    the first asker starts it, the others await the same one. It runs as a task of its own, so
    an asker that is cancelled (its client left) cancels it for no one; one that failed is
    forgotten, and the next asker computes again."""

    def __init__(self, size: int = SHARED_EVENTS) -> None:
        self.size = size
        self._kept: OrderedDict[Hashable, asyncio.Future[T]] = OrderedDict()

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        kept = self._kept.get(key)
        if kept is None:
            kept = self._kept[key] = asyncio.ensure_future(compute())
            kept.add_done_callback(lambda done: self._forget_failed(key, done))
            if len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return await asyncio.shield(kept)

    def _forget_failed(self, key: Hashable, done: asyncio.Future[T]) -> None:
        if (done.cancelled() or done.exception() is not None) and self._kept.get(key) is done:
            del self._kept[key]


DELIVERY: ContextVar[Delivery | None] = ContextVar("chronicle_delivery", default=None)
"""The running operation's delivery: set by the websocket handlers in the operation's task."""


class Shape:
    """One subscription shape: its events executed and serialised once, whatever the number of
    its subscribers."""

    __slots__ = ("_executor", "_operation", "key")

    def __init__(self, key: tuple[int, str, str], executor: Any) -> None:
        self.key = key
        self._executor = executor
        self._operation: OperationDefinitionNode = executor.operation  # held: its id is in key

    def payload(self, root: Any, event_id: object) -> str | None:
        """The `next` payload of `root`, serialised; None when the result cannot be shared
        (it has errors, or a resolver awaits): then the subscriber yields it, for strawberry."""
        per_shape = _PAYLOADS.get(event_id)
        if per_shape is None:
            per_shape = _PAYLOADS[event_id] = {}
            if len(_PAYLOADS) > SHARED_EVENTS:
                _PAYLOADS.popitem(last=False)
        shared = per_shape.get(self.key)
        if shared is not None and shared[0] is self._operation:
            return shared[1]
        result = execute_subscription_event(self._executor.build_per_event_executor(root))
        if isinstance(result, Coroutine):
            result.close()  # a resolver awaits: never awaited here, the subscriber yields
            return None
        if not isinstance(result, ExecutionResult) or result.errors or result.extensions:
            return None
        text = json.dumps({"data": result.data})
        per_shape[self.key] = (self._operation, text)
        return text

    async def shared_payload(self, root: Any, version: Hashable) -> str | None:
        """The payload of `root`, the state `version` of what the subscription watches, for a
        payload whose resolvers read the request (loaders, the caller's rights): executed once
        per shape and version, with this subscriber's executor, whose caller has the shape's
        scope. None when it cannot be shared (an error): then the subscriber yields it."""
        shared = await _RESULTS.get((self.key, version), lambda: self._serialised(root))
        if shared is None or shared[0] is not self._operation:
            return None
        return shared[1]

    async def _serialised(self, root: Any) -> tuple[Any, str] | None:
        result = execute_subscription_event(self._executor.build_per_event_executor(root))
        if isawaitable(result):
            result = await result
        if not isinstance(result, ExecutionResult) or result.errors or result.extensions:
            return None
        return self._operation, json.dumps({"data": result.data})


_RESULTS: Shared[tuple[Any, str] | None] = Shared()
"""Per shape and state, the serialised payload of a subscription whose resolvers read the
request (`orderChanged`, `postChanged`), beside its operation."""

_PAYLOADS: OrderedDict[object, dict[tuple[int, str, str], tuple[Any, str]]] = OrderedDict()
"""Per event (by id), each shape's serialised payload; the operation is kept beside it, so that
an id of an operation gone cannot be mistaken for another's."""


def shape_of(info: Info, scope: str) -> tuple[Shape, Delivery] | None:
    """The running subscription's shape and delivery, if it is delivered by frames (a
    websocket); None when its results must go through strawberry."""
    delivery = DELIVERY.get()
    executor = SUBSCRIBING.get()
    if delivery is None or executor is None:
        return None
    operation = executor.operation
    if operation is not info.operation:
        return None
    return Shape((id(operation), executor.variables_text, scope), executor), delivery
