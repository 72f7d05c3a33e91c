"""GraphQL output types of the write side, mapped from what the store returns."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.context import Info
from api.rows import from_row
from api.scalars import JSON, Position
from api.streaming import Shareable
from store.command_handler import CommandOutcome
from store.events import RecordedEvent

if TYPE_CHECKING:
    from api.orders import Order


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
    async def fulfilment(
        self, info: Info
    ) -> Annotated[Order, strawberry.lazy("api.orders")] | None:
        from api.orders import fulfilment_of

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
