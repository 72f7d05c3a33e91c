"""GraphQL output types of the write side, mapped from what the store returns. A command's result
imports the order read side (for placeOrder's fulfilment), never the other way round."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.context import Info
from api.errors import client_errors
from api.orders import Order
from api.rows import from_row
from api.scalars import JSON, Position
from api.streaming import Shareable
from projections import fulfilment, order_queries
from projections.errors import StaleRead
from store.command_handler import CommandOutcome
from store.events import RecordedEvent


@strawberry.type
class Event(Shareable):
    position: Position
    event_id: strawberry.ID
    stream_id: strawberry.ID
    stream_type: str
    version: int = strawberry.field(
        description="Version of the stream after this event: 1 for the first event of a stream."
    )
    type: str = strawberry.field(description="Past tense, e.g. UserRegistered, OrderPlaced.")
    schema_version: int
    data: JSON
    metadata: JSON = strawberry.field(description="commandId, correlationId, causationId, actor.")
    recorded_at: datetime

    @classmethod
    def of(cls, event: RecordedEvent) -> Event:
        return from_row(
            cls,
            event,
            position=Position(event.position),
            event_id=strawberry.ID(str(event.event_id)),
            type=event.event_type,
            data=JSON(event.data),
            metadata=JSON(event.metadata),
        )


@strawberry.type(description="What every command mutation returns once its events are committed.")
class CommandResult:
    stream_id: strawberry.ID
    version: int = strawberry.field(description="The stream's version after the command.")
    position: Position = strawberry.field(
        description="Position of the last event the command wrote (or the stream's last, if it "
        "wrote none). Pass it as minPosition to a query to read your own write."
    )
    events: list[Event]
    replayed: bool = strawberry.field(
        default=False,
        description="True when this commandId was already processed: the result is the first "
        "one's and nothing was written.",
    )

    @strawberry.field(
        description="placeOrder only: the order once the fulfilment process has confirmed or "
        "rejected it (or the customer cancelled it first), so one request can place an order and "
        "learn its fate. Waits up to CHRONICLE_STALE_READ_TIMEOUT seconds, else this field is "
        "null with a STALE_READ_TIMEOUT error. Null for every other command."
    )  # type: ignore[untyped-decorator]
    async def fulfilment(self, info: Info) -> Order | None:
        return await fulfilment_of(info, self)

    @classmethod
    def of(cls, outcome: CommandOutcome) -> CommandResult:
        return cls(
            stream_id=strawberry.ID(outcome.stream_id),
            version=outcome.version,
            position=Position(outcome.position),
            events=[Event.of(event) for event in outcome.events],
            replayed=outcome.replayed,
        )


@strawberry.type
class AggregateState:
    stream_id: strawberry.ID
    stream_type: str
    version: int
    state: JSON = strawberry.field(
        description="The aggregate's state rebuilt by replaying its events up to the requested "
        "version or time."
    )


async def fulfilment_of(info: Info, result: CommandResult) -> Order | None:
    """The order a placeOrder result placed, once it is confirmed, rejected or cancelled."""
    placed = next((event for event in result.events if event.type == "OrderPlaced"), None)
    if placed is None:
        return None
    services = info.context.services
    order_id = str(placed.stream_id)
    within = services.settings.stale_read_timeout
    stale = (
        f"order {order_id} was not confirmed or rejected within {within:g}s; it is still "
        "PLACED: watch it with orderChanged, or query order(id) later"
    )
    with client_errors({StaleRead: stale}):
        await fulfilment.decision(
            services.live, services.runner, services.store, order_id, placed.position, within
        )
    row = await order_queries.get_order(services.engine, order_id)
    return None if row is None else Order.of(row)
