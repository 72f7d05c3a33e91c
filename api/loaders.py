"""Per-request DataLoaders: nested reads cost one query per level, not one per row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader

from projections import catalog_queries, user_queries
from projections.catalog_queries import ProductRow
from projections.user_queries import UserRow

V = TypeVar("V")

BatchRead = Callable[[AsyncEngine, list[str]], Awaitable[Mapping[str, V]]]
"""A read-model query of many rows by id at once: the rows found, by id."""


class Loaders:
    """One DataLoader per batch read, made on a request's first use of it: a read model's
    module declares its batch read, and its resolvers load through `of(read)`, without a
    line here."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._made: dict[BatchRead[Any], DataLoader[str, Any]] = {}

    @classmethod
    def for_request(cls, engine: AsyncEngine) -> Loaders:
        return cls(engine)

    def of(self, read: BatchRead[V]) -> DataLoader[str, V | None]:
        """This request's loader of `read`: ids asked for in one tick go in one query."""
        loader = self._made.get(read)
        if loader is None:
            engine = self._engine

            async def load(ids: Sequence[str]) -> list[V | None]:
                found = await read(engine, list(ids))
                return [found.get(i) for i in ids]

            loader = self._made[read] = DataLoader(load_fn=load)
        return cast(DataLoader[str, V | None], loader)

    @property
    def user(self) -> DataLoader[str, UserRow | None]:
        return self.of(user_queries.get_users)

    @property
    def product(self) -> DataLoader[str, ProductRow | None]:
        return self.of(catalog_queries.get_products)
