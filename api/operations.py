"""Operations: the state of the read models, and rebuilding one."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.context import Info
from api.errors import ClientError
from api.scalars import Position
from projections.rebuild_progress import rebuild_progress
from projections.runner import ProjectionStatus as Status


@strawberry.type
class ProjectionStatus:
    name: str
    position: Position = strawberry.field(
        description="Last global position this projection has fully applied."
    )
    lag: int = strawberry.field(description="Events committed after that position.")
    status: str
    updated_at: datetime | None
    error: str | None = strawberry.field(
        description="Why the projection stopped, when status is failed."
    )
    failed_position: Position | None = strawberry.field(
        description="The event it stopped at, when status is failed."
    )
    parked: int = strawberry.field(
        description="How many events it has parked (CHRONICLE_ON_PROJECTION_ERROR=park): see "
        "parkedEvents."
    )
    progress: float | None = strawberry.field(
        default=None,
        description="While it is rebuilding: the fraction of the log replayed so far (0 to 1, "
        "by position); else null.",
    )

    @classmethod
    def of(cls, status: Status, progress: float | None = None) -> ProjectionStatus:
        return cls(
            name=status.name,
            position=Position(status.position),
            lag=status.lag,
            status=status.status,
            updated_at=status.updated_at,
            error=status.error,
            failed_position=None
            if status.failed_position is None
            else Position(status.failed_position),
            parked=status.parked,
            progress=progress,
        )


@strawberry.type
class OperationQueries:
    @strawberry.field
    async def projections(self, info: Info) -> list[ProjectionStatus]:
        services = info.context.services
        statuses = await services.runner.statuses()
        rebuilding = await rebuild_progress(services.engine)
        return [ProjectionStatus.of(s, rebuilding.get(s.name)) for s in statuses]


@strawberry.type
class OperationMutations:
    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Rebuild one read model from the first event; queries keep answering from "
        "the old tables until the new ones have caught up."
    )
    async def rebuild_projection(self, info: Info, name: str) -> ProjectionStatus:
        identity = info.context.identity
        if not identity.is_admin:
            if identity.subject is None:
                raise ClientError("UNAUTHENTICATED", "sign in as an admin to rebuild a read model")
            raise ClientError("FORBIDDEN", "only an admin may rebuild a read model")
        runner = info.context.services.runner
        if name in runner.process_managers:
            raise ClientError(
                "VALIDATION_FAILED",
                f"{name} is a process manager, not a read model: it has nothing to rebuild",
            )
        if name not in runner.projectors:
            known = ", ".join(sorted(runner.projectors))
            raise ClientError("NOT_FOUND", f"no projection {name!r}; known: {known}")
        await runner.rebuild(name)
        (status,) = [s for s in await runner.statuses() if s.name == name]
        return ProjectionStatus.of(status, (await rebuild_progress(runner.engine)).get(name))
