"""Arguments and input fields a client may leave out: strawberry's UNSET, as None."""

from __future__ import annotations

from typing import Any

import strawberry


def optional(value: Any) -> Any:
    """An input field the client left out or sent as null, as None."""
    return None if value is strawberry.UNSET else value
