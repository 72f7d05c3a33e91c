"""The contract's scalars: Position (a decimal string), DateTime and JSON."""

from __future__ import annotations

import re
from typing import Any, NewType

import strawberry
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

from api.errors import validation_failed
from api.money import CENTS_SCALAR, Cents
from domain.text import quoted

MAX_POSITION = 2**63 - 1


_DIGITS = re.compile(r"[0-9]{1,19}")
"""ASCII digits only: `str.isdigit` also takes "²" and `int` other scripts' digits."""


def parse_position(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise validation_failed(f"a Position is a decimal string, got {quoted(value)}")
    if _DIGITS.fullmatch(text) is None or int(text) > MAX_POSITION:
        raise validation_failed(
            f"a Position is a non-negative decimal integer below 2^63, got {quoted(value)}"
        )
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
