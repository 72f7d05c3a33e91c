"""Keyset pagination with opaque cursors, shared by every list query."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

MAX_PAGE_SIZE = 100


class InvalidPage(ValueError):
    """A malformed cursor or a page size out of range."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[tuple[str, T]]
    """Each item with its cursor."""
    total_count: int
    has_next_page: bool

    @property
    def end_cursor(self) -> str | None:
        return self.items[-1][0] if self.items else None


def encode_cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise InvalidPage(f"malformed cursor {cursor!r}") from error
    if not isinstance(key, list) or len(key) != arity:
        raise InvalidPage(f"malformed cursor {cursor!r}")
    return key


def check_page_size(first: int) -> None:
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidPage(f"first must be between 1 and {MAX_PAGE_SIZE}, got {first}")
