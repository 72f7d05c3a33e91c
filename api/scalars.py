"""The contract's scalars: Position (a decimal string), DateTime and JSON."""

from __future__ import annotations

from typing import Any, NewType

import strawberry
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

from api.errors import validation_failed
from api.money import CENTS_SCALAR, Cents

MAX_POSITION = 2**63 - 1


def parse_position(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise validation_failed(f"a Position is a decimal string, got {value!r}")
    if not text.isdigit() or int(text) > MAX_POSITION:
        raise validation_failed(f"a Position is a non-negative decimal integer, got {value!r}")
    return int(text)


Position = NewType("Position", int)

SCALARS: dict[object, ScalarDefinition] = {
    Position: strawberry.scalar(
        name="Position",
        description="Global position of an event in the store, as a decimal string "
        "(it may exceed 2^53).",
        serialize=str,
        parse_value=parse_position,
    ),
    Cents: CENTS_SCALAR,
}

__all__ = ["JSON", "SCALARS", "Position"]
