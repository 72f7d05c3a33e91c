"""The orders read model: one row per order and one per line, queryable by customer and status."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.projector import Tables
from store.events import RecordedEvent

# The status each event leaves an order in, and the columns it sets from its data.
_TRANSITIONS: dict[str, tuple[str | None, dict[str, str]]] = {
    "LineItemAdded": (None, {}),
    "LineItemRemoved": (None, {}),
    "OrderPlaced": ("PLACED", {}),
    "OrderConfirmed": ("CONFIRMED", {}),
    "OrderRejected": ("REJECTED", {"rejection_reason": "reason"}),
    "OrderPaid": ("PAID", {"paid_cents": "amount_cents"}),
    "OrderShipped": ("SHIPPED", {"carrier": "carrier", "tracking_number": "tracking_number"}),
    "OrderDelivered": ("DELIVERED", {"signed_by": "signed_by"}),
    "OrderCancelled": ("CANCELLED", {"cancellation_reason": "reason"}),
}


class OrdersProjector:
    name = "orders"
    tables: tuple[str, ...] = ("orders_view", "order_lines_view")
    event_types = frozenset({"OrderCreated", *_TRANSITIONS})

    async def apply(
        self, connection: AsyncConnection, events: Sequence[RecordedEvent], tables: Tables
    ) -> None:
        for event in events:
            await self._apply_one(connection, event, tables)

    async def _apply_one(
        self, connection: AsyncConnection, event: RecordedEvent, tables: Tables
    ) -> None:
        orders, lines = tables["orders_view"], tables["order_lines_view"]
        data = event.data
        params: dict[str, Any] = {
            "id": event.stream_id,
            "version": event.version,
            "at": event.recorded_at,
        }
        if event.event_type == "OrderCreated":
            await connection.execute(
                text(
                    f"INSERT INTO {orders} (id, customer_id, status, total_cents, "
                    "shipping_address, paid_cents, version, created_at, updated_at) VALUES "
                    "(:id, :customer, 'DRAFT', 0, CAST(:address AS jsonb), 0, :version, :at, :at) "
                    "ON CONFLICT (id) DO NOTHING"
                ),
                {
                    **params,
                    "customer": data["customer_id"],
                    "address": json.dumps(data["shipping_address"]),
                },
            )
            return
        status, columns = _TRANSITIONS[event.event_type]
        assignments = ["version = :version", "updated_at = :at"]
        if status is not None:
            assignments.append("status = :status")
            params["status"] = status
        for column, field in columns.items():
            assignments.append(f"{column} = :{column}")
            params[column] = data[field]
        updated = await connection.execute(
            text(
                f"UPDATE {orders} SET {', '.join(assignments)} "
                "WHERE id = :id AND version < :version"
            ),
            params,
        )
        if updated.rowcount == 0:
            return  # already applied
        if event.event_type == "LineItemAdded":
            await connection.execute(
                text(
                    f"INSERT INTO {lines} AS l (order_id, product_id, line_number, sku, name, "
                    "quantity, unit_price_cents) VALUES (:id, :product, (SELECT count(*) FROM "
                    f"{lines} WHERE order_id = :id), :sku, :name, :quantity, :price) "
                    "ON CONFLICT (order_id, product_id) DO UPDATE "
                    "SET quantity = l.quantity + excluded.quantity"
                ),
                {
                    "id": event.stream_id,
                    "product": data["product_id"],
                    "sku": data["sku"],
                    "name": data["name"],
                    "quantity": data["quantity"],
                    "price": data["unit_price_cents"],
                },
            )
        elif event.event_type == "LineItemRemoved":
            await connection.execute(
                text(f"DELETE FROM {lines} WHERE order_id = :id AND product_id = :product"),
                {"id": event.stream_id, "product": data["product_id"]},
            )
        if event.event_type in ("LineItemAdded", "LineItemRemoved"):
            await connection.execute(
                text(
                    # 64-bit whatever the columns' types: int4 * int4 overflows at 2^31-1,
                    # fails the batch and halts the read model for good.
                    f"UPDATE {orders} SET total_cents = (SELECT CAST(coalesce(sum(CAST("
                    "quantity AS bigint) * CAST(unit_price_cents AS bigint)), 0) AS bigint) "
                    f"FROM {lines} WHERE order_id = :id) WHERE id = :id"
                ),
                {"id": event.stream_id},
            )
