"""Money on the wire: the `Cents` scalar, and the contract's `Int` money fields above 2^31-1.

The domain accepts order totals up to `domain.orders.MAX_ORDER_TOTAL_CENTS` (10^12 cents), past
GraphQL's 32-bit `Int`. The contract's money fields are `Int!` and may not be retyped, so:

- `Cents` carries every amount the domain accepts, in and out: a JSON number, a whole number of
  cents from 0 to 2^53-1 (exact in every JSON parser, JavaScript's included). `payOrder` takes
  it as `amount`; orders answer it as `total`, `paid` and their lines' `lineTotal`.
- The contract's `Int!` money fields of an order (`totalCents`, `paidCents`, `lineTotalCents`)
  answer an amount above 2^31-1 exactly, as a JSON number, where graphql-core would raise a
  field error: an error there nulls the order and, every type above it being non-null, the whole
  page of `orders` that holds it. Below 2^31 they answer as they always have.
"""

from __future__ import annotations

import re
from typing import Any, NewType

import strawberry
from graphql import GraphQLInt, GraphQLLeafType
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.scalar import ScalarDefinition

from api.errors import validation_failed

MAX_CENTS = 2**53 - 1
"""JavaScript's largest safe integer: a JSON number up to it reads back exactly everywhere."""

Cents = NewType("Cents", int)

_DIGITS = re.compile(r"[0-9]{1,16}")


def parse_cents(value: Any) -> Cents:
    """A whole number of cents; a decimal string of one is taken too (for clients that hold
    big numbers as text), never a float: 1e2 or 100.0 is refused rather than rounded."""
    if isinstance(value, int) and not isinstance(value, bool):
        cents = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value) is not None:
        cents = int(value)
    else:
        cents = -1
    if not 0 <= cents <= MAX_CENTS:
        raise validation_failed(
            f"Cents is a whole number of cents from 0 to {MAX_CENTS}, got {value!r:.40}"
        )
    return Cents(cents)


CENTS_SCALAR: ScalarDefinition = strawberry.scalar(
    name="Cents",
    description="An amount of money in cents, as a JSON number: a whole number from 0 to "
    "2^53-1, exact in every JSON parser. Carries every amount the domain accepts, where the "
    "contract's 32-bit Int fields stop at 2^31-1.",
    serialize=int,
    parse_value=parse_cents,
)


class ExactCents(int):
    """An amount for one of the contract's `Int!` money fields: answered exactly even above
    2^31-1 (up to `MAX_CENTS`), where a plain `int` would be a field error."""

    __slots__ = ()


class ExactCentsExecutor(StrawberryGraphQLCoreExecutionContext):
    """Lets an `ExactCents` through an `Int` field whole; every other leaf as graphql-core."""

    @staticmethod
    def complete_leaf_value(return_type: GraphQLLeafType, result: Any) -> Any:
        if (
            result.__class__ is ExactCents
            and return_type is GraphQLInt
            and -MAX_CENTS <= result <= MAX_CENTS
        ):
            return int(result)
        return StrawberryGraphQLCoreExecutionContext.complete_leaf_value(return_type, result)
