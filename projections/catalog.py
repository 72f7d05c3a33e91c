"""The products read model: catalog fields and stock on hand, reserved and available."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.projector import Tables
from store.events import RecordedEvent

# How each stock event moves (on hand, reserved).
_STOCK_MOVES = {
    "ProductRestocked": (1, 0),
    "StockReserved": (0, 1),
    "StockReservationDeclined": (0, 0),  # moves nothing, but the version
    "StockReleased": (0, -1),
    "ReservedStockShipped": (-1, -1),
}


class ProductsProjector:
    """`products_view`, one row per product; every update is guarded by the stream version."""

    name = "products"
    tables: tuple[str, ...] = ("products_view",)
    event_types = frozenset({"ProductAdded", "ProductPriceChanged", *_STOCK_MOVES})

    async def apply(
        self, connection: AsyncConnection, events: Sequence[RecordedEvent], tables: Tables
    ) -> None:
        for event in events:
            await self._apply_one(connection, event, tables)

    async def _apply_one(
        self, connection: AsyncConnection, event: RecordedEvent, tables: Tables
    ) -> None:
        table, data = tables["products_view"], event.data
        params: dict[str, Any] = {
            "id": event.stream_id,
            "version": event.version,
            "at": event.recorded_at,
        }
        if event.event_type == "ProductAdded":
            await connection.execute(
                text(
                    f"INSERT INTO {table} (id, sku, name, price_cents, on_hand, reserved, "
                    "version, created_at, updated_at) VALUES (:id, :sku, :name, :price, :stock, "
                    "0, :version, :at, :at) ON CONFLICT (id) DO NOTHING"
                ),
                {
                    **params,
                    "sku": data["sku"],
                    "name": data["name"],
                    "price": data["price_cents"],
                    "stock": data["initial_stock"],
                },
            )
            return
        if event.event_type == "ProductPriceChanged":
            assignments = "price_cents = :price"
            params["price"] = data["price_cents"]
        else:
            on_hand, reserved = _STOCK_MOVES[event.event_type]
            assignments = "on_hand = on_hand + :on_hand, reserved = reserved + :reserved"
            params["on_hand"] = on_hand * data["quantity"]
            params["reserved"] = reserved * data["quantity"]
        await connection.execute(
            text(
                f"UPDATE {table} SET {assignments}, version = :version, updated_at = :at "
                "WHERE id = :id AND version < :version"
            ),
            params,
        )
