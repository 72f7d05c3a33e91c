"""Refusals of the read side: a read model not caught up, a position or page that does not
exist, a subscriber cut off. Each carries the code the API answers it with (api/errors.py)."""

from __future__ import annotations

from store.errors import StoreError


class StaleRead(StoreError):
    """A projection did not reach the requested position in time."""

    code = "STALE_READ_TIMEOUT"


class UnknownPosition(StoreError):
    """No event has the requested position."""

    code = "VALIDATION_FAILED"

    def __init__(self, position: int) -> None:
        self.position = position
        super().__init__(f"no event at position {position}")


class FellBehind(StoreError):
    """A subscriber's buffer overflowed; it must resume with `after` its last position."""

    code = "FELL_BEHIND"

    def __init__(self, last_position: int) -> None:
        self.last_position = last_position
        super().__init__(
            f"this subscription fell too far behind the live feed and was ended; subscribe "
            f'again with after: "{last_position}" to resume without a gap'
        )


class InvalidPage(StoreError, ValueError):
    """A malformed cursor or a page size out of range."""

    code = "VALIDATION_FAILED"


class InvalidSearch(StoreError, ValueError):
    """A search text beyond the limits of projections/pagination.py."""

    code = "VALIDATION_FAILED"


class UnknownReadModel(StoreError, LookupError):
    """No read model has this name (a process manager's parks nothing)."""

    code = "NOT_FOUND"

    def __init__(self, name: str, known: list[str], process_manager: bool = False) -> None:
        self.name = name
        what = "a process manager, not a read model" if process_manager else "no read model"
        super().__init__(f"{name!r} is {what}; read models: {', '.join(known)}")


class NotParked(StoreError, LookupError):
    """The read model has no event parked at this position."""

    code = "NOT_FOUND"

    def __init__(self, name: str, position: int) -> None:
        self.name = name
        self.position = position
        super().__init__(f"{name} has no event parked at position {position}")
