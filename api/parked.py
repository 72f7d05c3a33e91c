"""Operations on parked events (projections/parking.py): list, retry, skip. Admins only."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.context import Info
from api.errors import client_errors
from api.operations import ProjectionStatus
from api.scalars import Position
from domain.access import require_admin
from projections.parking import ParkedEvent as Parked


@strawberry.type(
    description="An event a read model set aside instead of stopping at it "
    "(CHRONICLE_ON_PROJECTION_ERROR=park), with the later events of its stream held behind it."
)
class ParkedEvent:
    projection: str
    position: Position
    stream_id: strawberry.ID
    event_type: str
    error: str = strawberry.field(
        description="Why it is parked: the failure, or the earlier parked event of its stream "
        "it is held behind."
    )
    attempts: int = strawberry.field(
        description="How many times applying it failed (0 for an event only held behind one)."
    )
    parked_at: datetime

    @classmethod
    def of(cls, parked: Parked) -> ParkedEvent:
        return cls(
            projection=parked.projection,
            position=Position(parked.position),
            stream_id=strawberry.ID(parked.stream_id),
            event_type=parked.event_type,
            error=parked.error,
            attempts=parked.attempts,
            parked_at=parked.parked_at,
        )


async def _status(info: Info, name: str) -> ProjectionStatus:
    (status,) = [s for s in await info.context.services.runner.statuses() if s.name == name]
    return ProjectionStatus.of(status)


@strawberry.type
class ParkedQueries:
    @strawberry.field(  # type: ignore[untyped-decorator]
        description="The events parked by one read model, or by every one, in order. Admins only."
    )
    async def parked_events(self, info: Info, projection: str | None = None) -> list[ParkedEvent]:
        with client_errors():
            require_admin(info.context.actor, "read parked events")
            parked = await info.context.services.runner.parked(projection)
        return [ParkedEvent.of(p) for p in parked]


@strawberry.type
class ParkedMutations:
    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Replay a read model's parked events in order (each stream's by version): "
        "those that apply leave the list; one that fails again stays, with the later events of "
        "its stream. Admins only."
    )
    async def retry_parked(self, info: Info, projection: str) -> ProjectionStatus:
        with client_errors():
            require_admin(info.context.actor, "retry parked events")
            await info.context.services.runner.retry_parked(projection)
        return await _status(info, projection)

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Drop one parked event for good. Later events of its stream held behind it "
        "stay parked until retryParked applies them. Admins only."
    )
    async def skip_parked(
        self, info: Info, projection: str, position: Position
    ) -> ProjectionStatus:
        with client_errors():
            require_admin(info.context.actor, "skip parked events")
            await info.context.services.runner.skip_parked(projection, position)
        return await _status(info, projection)
