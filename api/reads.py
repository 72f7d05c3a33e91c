"""What every query shares: read-your-writes with `minPosition`, a position to read the feed
after, and page errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from api.context import Info
from api.errors import client_errors, refused
from api.unset import optional
from projections.errors import StaleRead, UnknownPosition
from store.events import FeedCheckpoint


async def caught_up(info: Info, projection: str, min_position: int | None) -> None:
    """Wait until `projection` has applied `min_position` (bounded), if one is given. The
    position then holds for the whole request: a field that reads another read model waits
    for it there too (`also_caught_up`)."""
    position = optional(min_position)
    if position is None:
        return
    context = info.context
    context.min_position = max(context.min_position or 0, position)
    await _waited(info, projection, position)


async def also_caught_up(info: Info, projection: str) -> None:
    """For a field that reads `projection` under a query of another read model (an order's
    customer, a product's rating): wait until it has applied the request's `minPosition`."""
    position = info.context.min_position
    if position is not None:
        await _waited(info, projection, position)


def _waited(info: Info, projection: str, position: int) -> asyncio.Future[None]:
    """One wait per read model and position a request: the fields of a page share it."""
    waits = info.context.waits
    key = (projection, position)
    if key not in waits:
        waits[key] = asyncio.ensure_future(_wait(info, projection, position))
    return waits[key]


async def _wait(info: Info, projection: str, position: int) -> None:
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
