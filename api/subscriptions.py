"""Subscriptions: committed events and changed read models, pushed over websockets."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable
from functools import partial
from typing import Any, Protocol, TypeVar
from uuid import UUID

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine

from api.context import Info
from api.errors import ClientError, client_errors
from api.fanout import Shared, shape_of
from api.orders import Order
from api.posts import Post
from api.reads import checkpoint_after
from api.scalars import Position
from api.scopes import HIDDEN_STREAM_TYPE, OwnedStreams, reads_stream
from api.streaming import SHARED_RESULTS
from api.types import Event
from api.unset import optional
from domain.access import read_scope, require_signed_in
from projections import order_queries, post_queries
from projections.errors import StaleRead
from projections.live import EventFilter
from store.events import RecordedEvent

R = TypeVar("R")
V = TypeVar("V", bound="Versioned")
S = TypeVar("S")


class Versioned(Protocol):
    @property
    def version(self) -> int: ...


async def _changes(
    info: Info,
    stream_id: str,
    projection: str,
    read: Callable[[AsyncEngine, str], Awaitable[R | None]],
) -> AsyncGenerator[R, None]:
    """The read model's row of `stream_id` after each of its events, once `projection` has
    applied it: read once per event for every subscriber of that stream in this process."""
    services = info.context.services

    async def read_after(position: int) -> R | None:
        try:
            await services.runner.wait_for(
                projection, position, services.settings.stale_read_timeout
            )
        except StaleRead:
            return None  # a later event will carry the change with it
        return await read(services.engine, stream_id)

    with client_errors():
        async for event in services.live.subscribe(EventFilter(stream_id=stream_id)):
            key = (projection, stream_id, event.position)
            row = await _ROWS.get(key, partial(read_after, event.position))
            if row is not None:
                yield row


async def _states(
    info: Info,
    stream_id: str,
    projection: str,
    read: Callable[[AsyncEngine, str], Awaitable[V | None]],
    present: Callable[[V], S],
) -> AsyncGenerator[S, None]:
    """Each newer state of `stream_id`'s read model row, as `present` shows it: pushed by this
    subscriber's shape where it can be shared (api/fanout.py), else yielded for strawberry to
    send. Never an older state than the last."""
    framed = shape_of(info, read_scope(info.context.actor))
    sent = 0
    async for row in _changes(info, stream_id, projection, read):
        if row.version > sent:
            sent = row.version
            state = present(row)
            if framed is not None:
                payload = await framed[0].shared_payload(state, row.version)
                if payload is not None:
                    await framed[1].push(payload)
                    continue
            yield state


_ROWS: Shared[Any] = Shared()
"""Rows read after an event, by read model, stream and position."""


_PUSHED: OrderedDict[UUID, Event] = OrderedDict()


def pushed(event: RecordedEvent) -> Event:
    """The one `Event` every subscriber is handed for `event`: subscribers of the same document
    then share its execution (see api/streaming.py)."""
    shared = _PUSHED.get(event.event_id)
    if shared is None:
        shared = _PUSHED[event.event_id] = Event.of(event)
        if len(_PUSHED) > SHARED_RESULTS:
            _PUSHED.popitem(last=False)
    return shared


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Every committed event, live, in the feed's order (each stream's events by "
        "version). With `after`, first every event after that position (catch-up from the "
        "store), then live, with no gap and no duplicate. Filters combine with AND."
    )  # type: ignore[untyped-decorator]
    async def events(
        self,
        info: Info,
        after: Position | None = strawberry.UNSET,
        stream_id: strawberry.ID | None = strawberry.UNSET,
        stream_type: str | None = strawberry.UNSET,
        types: list[str] | None = strawberry.UNSET,
    ) -> AsyncGenerator[Event, None]:
        actor = info.context.actor
        with client_errors():
            require_signed_in(actor, "events")
        checkpoint = await checkpoint_after(info, after)
        chosen = optional(types)
        accepts = EventFilter(
            stream_id=optional(stream_id),
            stream_type=optional(stream_type),
            types=None if chosen is None else frozenset(chosen),
            hidden_stream_type=HIDDEN_STREAM_TYPE,
        )
        owned = None if actor.is_admin else OwnedStreams(info, str(actor.subject))
        # Subscribers of one document, variables and scope share each event's execution and
        # serialised frame (api/fanout.py); the filter of what each may read stays its own.
        framed = shape_of(info, read_scope(actor))
        with client_errors():
            async for event in info.context.services.live.subscribe(accepts, after=checkpoint):
                if owned is not None and not await owned.admits(event):
                    continue
                if framed is not None:
                    payload = framed[0].payload(pushed(event), event.event_id)
                    if payload is not None:
                        await framed[1].push(payload)
                        continue
                yield pushed(event)

    @strawberry.subscription(
        description="The order's read model each time a projection changes it."
    )  # type: ignore[untyped-decorator]
    async def order_changed(
        self, info: Info, order_id: strawberry.ID
    ) -> AsyncGenerator[Order, None]:
        with client_errors():
            require_signed_in(info.context.actor, "orders")
        if not await reads_stream(info, str(order_id)):
            # Another user's order, or none: the same answer, no hint that it exists.
            raise ClientError("NOT_FOUND", f"no order {order_id}")
        async for order in _states(
            info, str(order_id), "orders", order_queries.get_order, Order.of
        ):
            yield order

    @strawberry.subscription(
        description="The post's read model each time a projection changes it (new like, "
        "comment, edit)."
    )  # type: ignore[untyped-decorator]
    async def post_changed(self, info: Info, post_id: strawberry.ID) -> AsyncGenerator[Post, None]:
        async for post in _states(info, str(post_id), "posts", post_queries.get_post, Post.of):
            yield post
