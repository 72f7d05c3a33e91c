"""GraphQL types from read-model rows: a field the row holds under the same name, as it is,
is copied rather than written out again in every type's `of`."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def from_row(cls: type[T], row: object, **converted: Any) -> T:
    """`cls`, a strawberry type, with each field it takes at construction read from the
    attribute of `row` of the same name, except those given in `converted`: the ones the row
    holds under another name or in another form. A field the row lacks is an AttributeError,
    never a silent null."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    copied = {f.name: getattr(row, f.name) for f in fields if f.init and f.name not in converted}
    return cls(**copied, **converted)
