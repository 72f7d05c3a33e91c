"""Reads of the log itself: the audit log in feed order, and time travel of one aggregate."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry

from api.context import Info
from api.errors import ClientError, client_errors, validation_failed
from api.reads import checkpoint_after
from api.scalars import JSON, Position
from api.scopes import HIDDEN_STREAM_TYPE, OwnedStreams, reads_stream
from api.types import AggregateState, Event
from api.unset import optional
from domain.access import require_signed_in
from store.events import FEED_START
from store.serialization import encode_state

MAX_EVENTS_PAGE = 1_000


def _in_utc_range(moment: datetime) -> bool:
    """Whether `moment` has a UTC datetime: the database compares instants in UTC."""
    try:
        moment.astimezone(UTC)
    except OverflowError:
        return False
    return True


@strawberry.type
class HistoryQueries:
    @strawberry.field(description="The audit log, in global order.")  # type: ignore[untyped-decorator]
    async def events(
        self,
        info: Info,
        after: Position | None = strawberry.UNSET,
        first: int | None = 100,
        stream_id: strawberry.ID | None = strawberry.UNSET,
        stream_type: str | None = strawberry.UNSET,
        types: list[str] | None = strawberry.UNSET,
    ) -> list[Event]:
        store = info.context.services.store
        limit = 100 if first is None else first
        if not 1 <= limit <= MAX_EVENTS_PAGE:
            raise validation_failed(f"first must be between 1 and {MAX_EVENTS_PAGE}")
        actor = info.context.actor
        with client_errors():
            require_signed_in(actor, "events")
        checkpoint = await checkpoint_after(info, after)
        owned = None
        if not actor.is_admin:
            assert actor.subject is not None
            # A user's page ends where the owners read model has come: a stream it has not
            # recorded yet is read on the next page, never skipped.
            owned = await OwnedStreams(info, actor.subject).up_to_head()
        events = await store.read_feed(
            checkpoint or FEED_START,
            limit=limit,
            stream_id=optional(stream_id),
            stream_type=optional(stream_type),
            types=optional(types),
            hidden_stream_type=HIDDEN_STREAM_TYPE,
            stream_ids=None if owned is None else sorted(owned.streams),
            until=None if owned is None else owned.reached,
        )
        return [Event.of(event) for event in events]

    @strawberry.field(  # type: ignore[untyped-decorator]
        description="Time travel: state as of a stream version or a point in time (the latest "
        "when neither is given)."
    )
    async def aggregate_state(
        self,
        info: Info,
        stream_id: strawberry.ID,
        version: int | None = strawberry.UNSET,
        as_of: datetime | None = strawberry.UNSET,
    ) -> AggregateState | None:
        services = info.context.services
        version, as_of = optional(version), optional(as_of)
        if version is not None and as_of is not None:
            raise validation_failed("give a version or asOf, not both")
        if as_of is not None and as_of.tzinfo is None:
            raise validation_failed("asOf needs a time zone, e.g. 2026-01-31T12:00:00Z")
        if as_of is not None and not _in_utc_range(as_of):
            raise validation_failed("asOf must fall between the years 1 and 9999 in UTC")
        with client_errors():
            require_signed_in(info.context.actor, "aggregate states")
        found = await services.store.stream_version(str(stream_id))
        if found is None:
            return None
        stream_type, current = found
        if stream_type == HIDDEN_STREAM_TYPE or not await reads_stream(info, str(stream_id)):
            return None  # as for a stream that does not exist: no hint that it does
        if version is not None and not 1 <= version <= current:
            raise validation_failed(
                f"version must be between 1 and {current}, the stream's current version"
            )
        registration = services.aggregates.for_stream_type(stream_type)
        if registration is None:
            raise ClientError("NOT_FOUND", f"no aggregate of type {stream_type}")
        loaded = await services.handler.load(
            registration.decider, str(stream_id), to_version=version, as_of=as_of
        )
        if loaded.version == 0:
            return None  # the stream did not exist yet at that time
        return AggregateState(
            stream_id=stream_id,
            stream_type=stream_type,
            version=loaded.version,
            state=JSON(encode_state(loaded.state)),
        )
