"""What every query shares: read-your-writes with `minPosition`, and page errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from api.commands import optional
from api.context import Info
from api.errors import ClientError, validation_failed
from projections.pagination import InvalidPage, InvalidSearch
from projections.runner import StaleRead, UnknownPosition


async def caught_up(info: Info, projection: str, min_position: int | None) -> None:
    """Wait until `projection` has applied `min_position` (bounded), if one is given."""
    position = optional(min_position)
    if position is None:
        return
    services = info.context.services
    try:
        await services.runner.wait_for(projection, position, services.settings.stale_read_timeout)
    except UnknownPosition as error:
        raise validation_failed(f"no event at position {position}") from error
    except StaleRead as error:
        raise ClientError(
            "STALE_READ_TIMEOUT",
            f"the {projection} read model has not reached position {position} within "
            f"{services.settings.stale_read_timeout:g}s; retry later",
        ) from error


@contextlib.contextmanager
def page_errors() -> Iterator[None]:
    """A malformed cursor, a page size out of range or a search beyond its limits is the
    client's VALIDATION_FAILED."""
    try:
        yield
    except (InvalidPage, InvalidSearch) as error:
        raise validation_failed(str(error)) from error
