"""One generic page of a read model: `Connection[User]` is the contract's `UserConnection`.

strawberry names a specialisation after its type argument (`Connection[User]` becomes
`UserConnection`, `Edge[User]` becomes `UserEdge`), so one pair of classes answers every list
query under the names the contract gives them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import strawberry

from projections.pagination import Page

T = TypeVar("T")
R = TypeVar("R")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int

    @classmethod
    def of(cls, page: Page[R], node: Callable[[R], T]) -> Connection[T]:
        """The page of read-model rows, each row made a node by `node`."""
        return cls(
            edges=[Edge(cursor=cursor, node=node(row)) for cursor, row in page.items],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
            total_count=page.total_count,
        )
