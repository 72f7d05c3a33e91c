"""What a caller may read: their own user's private fields, their own orders, the events of
the streams they own. The rules are the domain's (domain/access.py); this module finds the
facts they need: the caller's own user, a stream's owner, the streams a subject owns.
"""

from __future__ import annotations

from api.context import Info
from api.errors import client_errors
from api.lookups import user_of_subject
from domain.access import owns
from domain.decider import CLAIMS, owner_fields
from projections import owners
from projections.errors import StaleRead
from store.events import FEED_START, FeedCheckpoint, RecordedEvent

OWNERS = owners.StreamOwnersProjector.name

HIDDEN_STREAM_TYPE = CLAIMS.stream_type
"""The internal uniqueness claims: never shown by the public `events` API."""


async def own_user_id(info: Info) -> str | None:
    """The id of the user bound to the caller's token subject, if one is (looked up once per
    request or websocket)."""
    context = info.context
    subject = context.identity.subject
    if subject is None:
        return None
    if context.own_user_id is None:
        context.own_user_id = await user_of_subject(info, subject)
    return context.own_user_id


async def reads_user(info: Info, user_id: str) -> bool:
    """Whether the caller may read the private fields of user `user_id`: theirs, or an admin."""
    actor = info.context.actor
    if actor.is_admin:
        return True
    return await own_user_id(info) == user_id


async def stream_owner(info: Info, stream_id: str) -> str | None:
    """The token subject that owns `stream_id`, from its first event in the store (the write
    side: it holds as soon as the stream is written)."""
    services = info.context.services
    first = await services.store.read_stream(stream_id, to_version=1)
    if not first:
        return None
    return owner_in(info, first[0])


def owner_in(info: Info, event: RecordedEvent) -> str | None:
    """The owner an owning event names; None for any other event."""
    fields = owner_fields(r.decider for r in info.context.services.aggregates.registrations)
    field = fields.get(event.event_type)
    owner = None if field is None else event.data.get(field)
    return owner if isinstance(owner, str) else None


async def reads_stream(info: Info, stream_id: str) -> bool:
    """Whether the caller may read the events and states of `stream_id`: its owner, or an
    admin."""
    actor = info.context.actor
    return actor.is_admin or owns(actor, await stream_owner(info, stream_id))


class OwnedStreams:
    """The streams a subject owns, known up to a checkpoint of the owners read model: an event
    at or before it is decided by the set; one beyond it waits for the read model to reach it
    (bounded) first, so an event of a newly owned stream is never passed over."""

    def __init__(self, info: Info, subject: str) -> None:
        self.info = info
        self.subject = subject
        self.reached: FeedCheckpoint = FEED_START
        self.streams: frozenset[str] = frozenset()

    async def up_to_head(self) -> OwnedStreams:
        """Known up to the feed's head, at least."""
        head = await self.info.context.services.store.feed_head()
        if head.position:
            await self.refresh(head.position)
        return self

    async def admits(self, event: RecordedEvent) -> bool:
        if event.checkpoint > self.reached:
            await self.refresh(event.position)
        return event.stream_id in self.streams

    async def refresh(self, position: int) -> None:
        services = self.info.context.services
        within = services.settings.stale_read_timeout
        stale = (
            f"the stream owners read model has not reached position {position} within "
            f"{within:g}s; retry later"
        )
        with client_errors({StaleRead: stale}):
            await services.runner.wait_for(OWNERS, position, within)
        reached, self.streams = await owners.streams_owned_by(services.engine, self.subject)
        self.reached = reached or FEED_START
