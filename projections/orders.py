"""The orders read model: one row per order and one per line, queryable by customer and status."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, assert_never

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.orders import DECIDER as orders_decider
from domain.orders import (
    Event,
    LineItemAdded,
    LineItemRemoved,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
    OrderStatus,
)
from projections.projector import Envelope, Tables, type_names

# The read model follows every event of its aggregate: the decider's list, not a copy of it.
HANDLED: tuple[type[Any], ...] = tuple(orders_decider.event_types)


class OrdersProjector:
    name = "orders"
    tables: tuple[str, ...] = ("orders_view", "order_lines_view")
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
        orders, lines = tables["orders_view"], tables["order_lines_view"]
        params: dict[str, Any] = {
            "id": envelope.stream_id,
            "version": envelope.version,
            "at": envelope.recorded_at,
        }
        event = envelope.event
        if isinstance(event, OrderCreated):
            await connection.execute(
                text(
                    f"INSERT INTO {orders} (id, customer_id, status, total_cents, "
                    "shipping_address, paid_cents, version, created_at, updated_at) VALUES "
                    "(:id, :customer, :status, 0, CAST(:address AS jsonb), 0, :version, :at, :at) "
                    "ON CONFLICT (id) DO NOTHING"
                ),
                {
                    **params,
                    "customer": event.customer_id,
                    "status": OrderStatus.DRAFT.value,
                    "address": json.dumps(msgspec.to_builtins(event.shipping_address)),
                },
            )
            return
        # The status the event leaves the order in (None: unchanged), and the columns it sets.
        status: OrderStatus | None = None
        columns: dict[str, Any] = {}
        match event:
            case LineItemAdded() | LineItemRemoved():
                pass
            case OrderPlaced():
                status = OrderStatus.PLACED
            case OrderConfirmed():
                status = OrderStatus.CONFIRMED
            case OrderRejected(reason=reason):
                status, columns = OrderStatus.REJECTED, {"rejection_reason": reason}
            case OrderPaid(amount_cents=amount):
                status, columns = OrderStatus.PAID, {"paid_cents": amount}
            case OrderShipped(carrier=carrier, tracking_number=tracking):
                status = OrderStatus.SHIPPED
                columns = {"carrier": carrier, "tracking_number": tracking}
            case OrderDelivered(signed_by=signed_by):
                status, columns = OrderStatus.DELIVERED, {"signed_by": signed_by}
            case OrderCancelled(reason=reason):
                status, columns = OrderStatus.CANCELLED, {"cancellation_reason": reason}
            case other:
                assert_never(other)
        assignments = ["version = :version", "updated_at = :at"]
        if status is not None:
            assignments.append("status = :status")
            params["status"] = status.value
        for column, value in columns.items():
            assignments.append(f"{column} = :{column}")
            params[column] = value
        updated = await connection.execute(
            text(
                f"UPDATE {orders} SET {', '.join(assignments)} "
                "WHERE id = :id AND version < :version"
            ),
            params,
        )
        if updated.rowcount == 0:
            return  # already applied
        if isinstance(event, LineItemAdded):
            await connection.execute(
                text(
                    f"INSERT INTO {lines} AS l (order_id, product_id, line_number, sku, name, "
                    "quantity, unit_price_cents) VALUES (:id, :product, (SELECT count(*) FROM "
                    f"{lines} WHERE order_id = :id), :sku, :name, :quantity, :price) "
                    "ON CONFLICT (order_id, product_id) DO UPDATE "
                    "SET quantity = l.quantity + excluded.quantity"
                ),
                {
                    "id": envelope.stream_id,
                    "product": event.product_id,
                    "sku": event.sku,
                    "name": event.name,
                    "quantity": event.quantity,
                    "price": event.unit_price_cents,
                },
            )
        elif isinstance(event, LineItemRemoved):
            await connection.execute(
                text(f"DELETE FROM {lines} WHERE order_id = :id AND product_id = :product"),
                {"id": envelope.stream_id, "product": event.product_id},
            )
        if isinstance(event, LineItemAdded | LineItemRemoved):
            await connection.execute(
                text(
                    # 64-bit whatever the columns' types: int4 * int4 overflows at 2^31-1,
                    # fails the batch and halts the read model for good.
                    f"UPDATE {orders} SET total_cents = (SELECT CAST(coalesce(sum(CAST("
                    "quantity AS bigint) * CAST(unit_price_cents AS bigint)), 0) AS bigint) "
                    f"FROM {lines} WHERE order_id = :id) WHERE id = :id"
                ),
                {"id": envelope.stream_id},
            )
