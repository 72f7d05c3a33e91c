"""Per-request DataLoaders: nested reads cost one query per level, not one per row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader

from projections import catalog_queries, user_queries
from projections.catalog_queries import ProductRow
from projections.user_queries import UserRow


@dataclass(frozen=True, slots=True)
class Loaders:
    user: DataLoader[str, UserRow | None]
    product: DataLoader[str, ProductRow | None]

    @classmethod
    def for_request(cls, engine: AsyncEngine) -> Loaders:
        async def load_users(ids: Sequence[str]) -> list[UserRow | None]:
            found = await user_queries.get_users(engine, list(ids))
            return [found.get(i) for i in ids]

        async def load_products(ids: Sequence[str]) -> list[ProductRow | None]:
            found = await catalog_queries.get_products(engine, list(ids))
            return [found.get(i) for i in ids]

        return cls(user=DataLoader(load_fn=load_users), product=DataLoader(load_fn=load_products))
