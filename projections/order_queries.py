"""Queries of the orders read model, for the API."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.pagination import Page, keyset_page

_COLUMNS = (
    "id, customer_id, status, total_cents, shipping_address::text AS address_json, "
    "paid_cents, carrier, "
    "tracking_number, signed_by, rejection_reason, cancellation_reason, version, created_at, "
    "updated_at"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LineRow:
    product_id: str
    sku: str
    name: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRow:
    id: str
    customer_id: str
    status: str
    total_cents: int
    shipping_address: dict[str, Any]
    paid_cents: int
    carrier: str | None
    tracking_number: str | None
    signed_by: str | None
    rejection_reason: str | None
    cancellation_reason: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    lines: list[LineRow] = field(default_factory=list)


def _row(row: Any) -> OrderRow:
    values = dict(row._mapping)
    values["shipping_address"] = json.loads(values.pop("address_json"))
    return OrderRow(**values)


async def _with_lines(engine: AsyncEngine, orders: list[OrderRow]) -> list[OrderRow]:
    """Fill the lines of every order with one query."""
    if not orders:
        return orders
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT order_id, product_id, sku, name, quantity, unit_price_cents "
                "FROM order_lines_view WHERE order_id = ANY(CAST(:ids AS text[])) "
                "ORDER BY order_id, line_number"
            ),
            {"ids": [o.id for o in orders]},
        )
        lines: dict[str, list[LineRow]] = defaultdict(list)
        for row in rows:
            values = dict(row._mapping)
            lines[values.pop("order_id")].append(LineRow(**values))
    for order in orders:
        order.lines.extend(lines.get(order.id, []))
    return orders


async def get_order(engine: AsyncEngine, order_id: str) -> OrderRow | None:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(f"SELECT {_COLUMNS} FROM orders_view WHERE id = :id"), {"id": order_id}
            )
        ).first()
    if row is None:
        return None
    (order,) = await _with_lines(engine, [_row(row)])
    return order


async def list_orders(
    engine: AsyncEngine,
    *,
    first: int,
    after: str | None = None,
    customer_id: str | None = None,
    status: str | None = None,
) -> Page[OrderRow]:
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if customer_id is not None:
        conditions.append("customer_id = :customer_id")
        params["customer_id"] = customer_id
    if status is not None:
        conditions.append("status = :status")
        params["status"] = status
    page = await keyset_page(
        engine,
        table="orders_view",
        columns=_COLUMNS,
        where=conditions,
        params=params,
        first=first,
        after=after,
        make=_row,
    )
    await _with_lines(engine, [order for _, order in page.items])
    return page
