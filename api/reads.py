"""What every query shares: read-your-writes with `minPosition`, a position to read the feed
after, and page errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from api.context import Info
from api.errors import client_errors, refused
from api.unset import optional
from projections.errors import StaleRead, UnknownPosition
from store.events import FeedCheckpoint


async def caught_up(info: Info, projection: str, min_position: int | None) -> None:
    """Wait until `projection` has applied `min_position` (bounded), if one is given."""
    position = optional(min_position)
    if position is None:
        return
    services = info.context.services
    within = services.settings.stale_read_timeout
    stale = (
        f"the {projection} read model has not reached position {position} within "
        f"{within:g}s; retry later"
    )
    with client_errors({StaleRead: stale}):
        await services.runner.wait_for(projection, position, within)


async def checkpoint_after(info: Info, after: int | None) -> FeedCheckpoint | None:
    """The feed checkpoint of the event at position `after`, None when it is not given."""
    position = optional(after)
    if position is None:
        return None
    checkpoint = await info.context.services.store.checkpoint_at(position)
    if checkpoint is None:
        raise refused(UnknownPosition(position))
    return checkpoint


@contextlib.contextmanager
def page_errors() -> Iterator[None]:
    """A malformed cursor, a page size out of range or a search beyond its limits is the
    client's VALIDATION_FAILED."""
    with client_errors():
        yield
