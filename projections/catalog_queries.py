"""Queries of the products read model, for the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.pagination import Page, keyset_page, prefix_query

_COLUMNS = "id, sku, name, price_cents, on_hand, reserved, version, created_at, updated_at"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductRow:
    id: str
    sku: str
    name: str
    price_cents: int
    on_hand: int
    reserved: int
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


def _row(row: Any) -> ProductRow:
    return ProductRow(**row._mapping)


async def get_products(engine: AsyncEngine, ids: list[str]) -> dict[str, ProductRow]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(f"SELECT {_COLUMNS} FROM products_view WHERE id = ANY(CAST(:ids AS text[]))"),
            {"ids": ids},
        )
        return {row.id: _row(row) for row in rows}


async def list_products(
    engine: AsyncEngine,
    *,
    first: int,
    after: str | None = None,
    search: str | None = None,
    in_stock: bool | None = None,
) -> Page[ProductRow]:
    """Products in the order they were added; `search` matches words of SKU and name."""
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if search is not None:
        query = prefix_query(search)
        if query is None:
            return Page(items=[], total_count=0, has_next_page=False)
        conditions.append("search @@ to_tsquery('simple', :query)")
        params["query"] = query
    if in_stock is not None:
        conditions.append("(on_hand - reserved > 0) = :in_stock")
        params["in_stock"] = in_stock
    return await keyset_page(
        engine,
        table="products_view",
        columns=_COLUMNS,
        where=conditions,
        params=params,
        first=first,
        after=after,
        make=_row,
    )
