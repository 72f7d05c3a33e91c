"""The products read model: catalog fields and stock on hand, reserved and available."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_never

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.catalog import DECIDER as catalog_decider
from domain.catalog import (
    Event,
    ProductAdded,
    ProductPriceChanged,
    ProductRestocked,
    ReservedStockShipped,
    StockReleased,
    StockReservationDeclined,
    StockReserved,
)
from projections.projector import Envelope, Tables, type_names

# The read model follows every event of its aggregate: the decider's list, not a copy of it.
HANDLED: tuple[type[Any], ...] = tuple(catalog_decider.event_types)


class ProductsProjector:
    """`products_view`, one row per product; every update is guarded by the stream version."""

    name = "products"
    tables: tuple[str, ...] = ("products_view",)
    handles = HANDLED
    event_types = type_names(HANDLED)

    async def apply(
        self, connection: AsyncConnection, events: Sequence[Envelope[Event]], tables: Tables
    ) -> None:
        for envelope in events:
            await self._apply_one(connection, envelope, tables)

    async def _apply_one(
        self, connection: AsyncConnection, envelope: Envelope[Event], tables: Tables
    ) -> None:
        table = tables["products_view"]
        params: dict[str, Any] = {
            "id": envelope.stream_id,
            "version": envelope.version,
            "at": envelope.recorded_at,
        }
        # How each stock event moves (on hand, reserved), by its quantity.
        on_hand, reserved = 0, 0
        match envelope.event:
            case ProductAdded() as added:
                await connection.execute(
                    text(
                        f"INSERT INTO {table} (id, sku, name, price_cents, on_hand, reserved, "
                        "version, created_at, updated_at) VALUES (:id, :sku, :name, :price, "
                        ":stock, 0, :version, :at, :at) ON CONFLICT (id) DO NOTHING"
                    ),
                    {
                        **params,
                        "sku": added.sku,
                        "name": added.name,
                        "price": added.price_cents,
                        "stock": added.initial_stock,
                    },
                )
                return
            case ProductPriceChanged(price_cents=price):
                assignments = "price_cents = :price"
                params["price"] = price
            case ProductRestocked(quantity=quantity):
                on_hand = quantity
            case StockReserved(quantity=quantity):
                reserved = quantity
            case StockReservationDeclined():
                pass  # moves nothing, but the version
            case StockReleased(quantity=quantity):
                reserved = -quantity
            case ReservedStockShipped(quantity=quantity):
                on_hand, reserved = -quantity, -quantity
            case other:
                assert_never(other)
        if not isinstance(envelope.event, ProductPriceChanged):
            assignments = "on_hand = on_hand + :on_hand, reserved = reserved + :reserved"
            params["on_hand"], params["reserved"] = on_hand, reserved
        await connection.execute(
            text(
                f"UPDATE {table} SET {assignments}, version = :version, updated_at = :at "
                "WHERE id = :id AND version < :version"
            ),
            params,
        )
