"""What the console (/console) asks of the service beyond the rest of the API: verifying a read
model against a replay of the log, and how many live subscribers the feed serves. Admins only."""

from __future__ import annotations

import strawberry

from api.context import Info
from api.errors import ClientError, client_errors
from api.scalars import Position
from domain.access import require_admin
from projections.projector import Projector
from projections.verify import describe, verify_projection


@strawberry.type(description="How a read model compared with a replay of the log.")
class VerifyResult:
    name: str
    ok: bool = strawberry.field(description="Every row matches the replay.")
    differences: int = strawberry.field(description="Rows that differ, in all its tables.")
    position: Position = strawberry.field(description="The checkpoint both sides stood at.")
    rows: int = strawberry.field(description="Rows in the live tables.")
    summary: str = strawberry.field(
        description="What differs, as `chronicle projections verify` prints it."
    )


@strawberry.type(description="The live feed of this process, as /health reports it.")
class LiveStats:
    subscribers: int = strawberry.field(description="Open `events` and `*Changed` subscriptions.")
    buffered_events: int = strawberry.field(description="Events waiting in their buffers.")


def read_model(info: Info, name: str) -> Projector:
    """The read model called `name`, or the client error saying why there is none."""
    runner = info.context.services.runner
    if name in runner.process_managers:
        raise ClientError("VALIDATION_FAILED", f"{name} is a process manager, not a read model")
    if name not in runner.projectors:
        known = ", ".join(sorted(runner.projectors))
        raise ClientError("NOT_FOUND", f"no projection {name!r}; known: {known}")
    return runner.projector(name)


@strawberry.type
class ConsoleQueries:
    @strawberry.field(description="Live subscribers of this process. Admins only.")  # type: ignore[untyped-decorator]
    async def live_stats(self, info: Info) -> LiveStats:
        with client_errors():
            require_admin(info.context.actor, "read the live feed's statistics")
        live = info.context.services.live
        return LiveStats(subscribers=live.subscriber_count, buffered_events=live.buffered)


@strawberry.type
class ConsoleMutations:
    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Replay the log into scratch tables and compare them with the read model, "
        "at its checkpoint (as `chronicle projections verify`). Admins only."
    )
    async def verify_projection(self, info: Info, name: str) -> VerifyResult:
        with client_errors():
            require_admin(info.context.actor, "verify a read model")
        projector = read_model(info, name)
        services = info.context.services
        verification = await verify_projection(
            services.engine, services.store, projector, batch_size=services.runner.batch_size
        )
        return VerifyResult(
            name=verification.name,
            ok=verification.ok,
            differences=sum(drift.count for drift in verification.drift),
            position=Position(verification.checkpoint.position),
            rows=verification.rows,
            summary=describe(verification),
        )
