"""Orders: mutations to commands of domain/orders.py, queries to the orders view."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from api.catalog import Product
from api.command_input import CommandInput, VersionedCommandInput
from api.commands import execute, new_stream_id, optional
from api.connection import Connection
from api.context import Info
from api.errors import client_errors
from api.lookups import catalog_entry, user_exists
from api.money import Cents, ExactCents
from api.reads import caught_up, page_errors
from api.rows import from_row
from api.scalars import Position
from api.types import CommandResult
from api.users import User
from domain import orders
from projections import fulfilment, order_queries
from projections.errors import StaleRead
from projections.order_queries import OrderRow


@strawberry.input
class AddressInput:
    line1: str
    line2: str | None = strawberry.UNSET
    city: str
    postal_code: str
    country: str


@strawberry.input
class CreateOrderInput(CommandInput):
    customer_id: strawberry.ID
    shipping_address: AddressInput


@strawberry.input
class AddLineItemInput(VersionedCommandInput):
    order_id: strawberry.ID
    product_id: strawberry.ID
    quantity: int


@strawberry.input
class RemoveLineItemInput(VersionedCommandInput):
    order_id: strawberry.ID
    product_id: strawberry.ID


@strawberry.input
class PlaceOrderInput(VersionedCommandInput):
    order_id: strawberry.ID


@strawberry.input
class PayOrderInput(VersionedCommandInput):
    order_id: strawberry.ID
    amount_cents: int
    method: str


@strawberry.input(
    description="payOrder's input with the amount as Cents: it pays every order the domain "
    "accepts, where amountCents (a 32-bit Int) stops at 2^31-1 cents."
)
class PayOrderAmountInput(VersionedCommandInput):
    order_id: strawberry.ID
    amount: Cents = strawberry.field(description="The amount paid, in cents: the order's total.")
    method: str


@strawberry.input
class ShipOrderInput(VersionedCommandInput):
    order_id: strawberry.ID
    carrier: str
    tracking_number: str


@strawberry.input
class DeliverOrderInput(VersionedCommandInput):
    order_id: strawberry.ID
    signed_by: str


@strawberry.input
class CancelOrderInput(VersionedCommandInput):
    order_id: strawberry.ID
    reason: str


async def _on_order(info: Info, input: Any, command: orders.Command) -> CommandResult:
    return await execute(
        info,
        orders.DECIDER,
        str(input.order_id),
        command,
        expected_version=input.expected_version,
        command_id=input.command_id,
        request=input,
    )


@strawberry.type
class OrderMutations:
    @strawberry.mutation
    async def create_order(self, info: Info, input: CreateOrderInput) -> CommandResult:
        order_id = new_stream_id("order", input.command_id)
        address = input.shipping_address
        command = orders.CreateOrder(
            order_id=order_id,
            customer_id=input.customer_id,
            customer_exists=await user_exists(info, str(input.customer_id)),
            shipping_address=orders.Address(
                line1=address.line1,
                line2=optional(address.line2),
                city=address.city,
                postal_code=address.postal_code,
                country=address.country,
            ),
        )
        return await execute(
            info, orders.DECIDER, order_id, command, command_id=input.command_id, request=input
        )

    @strawberry.mutation
    async def add_line_item(self, info: Info, input: AddLineItemInput) -> CommandResult:
        command = orders.AddLineItem(
            order_id=input.order_id,
            product_id=input.product_id,
            quantity=input.quantity,
            product=await catalog_entry(info, str(input.product_id)),
        )
        return await _on_order(info, input, command)

    @strawberry.mutation
    async def remove_line_item(self, info: Info, input: RemoveLineItemInput) -> CommandResult:
        command = orders.RemoveLineItem(order_id=input.order_id, product_id=input.product_id)
        return await _on_order(info, input, command)

    @strawberry.mutation
    async def place_order(self, info: Info, input: PlaceOrderInput) -> CommandResult:
        return await _on_order(info, input, orders.PlaceOrder(order_id=input.order_id))

    @strawberry.mutation
    async def pay_order(self, info: Info, input: PayOrderInput) -> CommandResult:
        command = orders.PayOrder(
            order_id=input.order_id, amount_cents=input.amount_cents, method=input.method
        )
        return await _on_order(info, input, command)

    @strawberry.mutation(
        description="payOrder for every order the domain accepts: the amount as Cents, so "
        "totals above 2^31-1 cents can be paid."
    )  # type: ignore[untyped-decorator]
    async def pay_order_amount(self, info: Info, input: PayOrderAmountInput) -> CommandResult:
        command = orders.PayOrder(
            order_id=input.order_id, amount_cents=input.amount, method=input.method
        )
        return await _on_order(info, input, command)

    @strawberry.mutation
    async def ship_order(self, info: Info, input: ShipOrderInput) -> CommandResult:
        command = orders.ShipOrder(
            order_id=input.order_id, carrier=input.carrier, tracking_number=input.tracking_number
        )
        return await _on_order(info, input, command)

    @strawberry.mutation
    async def deliver_order(self, info: Info, input: DeliverOrderInput) -> CommandResult:
        command = orders.DeliverOrder(order_id=input.order_id, signed_by=input.signed_by)
        return await _on_order(info, input, command)

    @strawberry.mutation
    async def cancel_order(self, info: Info, input: CancelOrderInput) -> CommandResult:
        command = orders.CancelOrder(order_id=input.order_id, reason=input.reason)
        return await _on_order(info, input, command)


# The domain's statuses, as the GraphQL enum of the same name and values.
OrderStatus = orders.OrderStatus
strawberry.enum(OrderStatus, name="OrderStatus")


@strawberry.type
class Address:
    line1: str
    line2: str | None
    city: str
    postal_code: str
    country: str


@strawberry.type
class LineItem:
    product_id: strawberry.ID
    sku: str
    name: str
    quantity: int
    unit_price_cents: int = strawberry.field(
        description="Captured from the catalog when the item was added; never taken from the "
        "client."
    )
    line_total_cents: int
    line_total: Cents = strawberry.field(
        description="The same amount as lineTotalCents, as Cents: exact in every client."
    )

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        row = await info.context.loaders.product.load(str(self.product_id))
        return None if row is None else Product.of(row)


@strawberry.type
class Order:
    id: strawberry.ID
    customer_id: strawberry.ID
    status: OrderStatus
    items: list[LineItem]
    total_cents: int
    total: Cents = strawberry.field(
        description="The same amount as totalCents, as Cents: exact in every client for every "
        "order the domain accepts."
    )
    shipping_address: Address
    paid_cents: int
    paid: Cents = strawberry.field(
        description="The same amount as paidCents, as Cents: exact in every client."
    )
    carrier: str | None
    tracking_number: str | None
    signed_by: str | None
    rejection_reason: str | None
    cancellation_reason: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    @strawberry.field
    async def customer(self, info: Info) -> User | None:
        row = await info.context.loaders.user.load(str(self.customer_id))
        return None if row is None else User.of(row)

    @classmethod
    def of(cls, row: OrderRow) -> Order:
        address = row.shipping_address
        return from_row(
            cls,
            row,
            status=OrderStatus(row.status),
            items=[
                from_row(
                    LineItem,
                    line,
                    line_total_cents=ExactCents(line.quantity * line.unit_price_cents),
                    line_total=Cents(line.quantity * line.unit_price_cents),
                )
                for line in row.lines
            ],
            total_cents=ExactCents(row.total_cents),
            total=Cents(row.total_cents),
            shipping_address=Address(
                line1=address["line1"],
                line2=address.get("line2"),
                city=address["city"],
                postal_code=address["postal_code"],
                country=address["country"],
            ),
            paid_cents=ExactCents(row.paid_cents),
            paid=Cents(row.paid_cents),
        )


@strawberry.type
class OrderQueries:
    @strawberry.field
    async def order(
        self, info: Info, id: strawberry.ID, min_position: Position | None = strawberry.UNSET
    ) -> Order | None:
        await caught_up(info, "orders", min_position)
        row = await order_queries.get_order(info.context.services.engine, str(id))
        return None if row is None else Order.of(row)

    @strawberry.field
    async def orders(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
        customer_id: strawberry.ID | None = strawberry.UNSET,
        status: OrderStatus | None = strawberry.UNSET,
        min_position: Position | None = strawberry.UNSET,
    ) -> Connection[Order]:
        await caught_up(info, "orders", min_position)
        chosen = optional(status)
        with page_errors():
            page = await order_queries.list_orders(
                info.context.services.engine,
                first=20 if first is None else first,
                after=optional(after),
                customer_id=optional(customer_id),
                status=None if chosen is None else chosen.value,
            )
        return Connection.of(page, Order.of)


async def fulfilment_of(info: Info, result: CommandResult) -> Order | None:
    """The order a placeOrder result placed, once it is confirmed, rejected or cancelled."""
    placed = next((event for event in result.events if event.type == "OrderPlaced"), None)
    if placed is None:
        return None
    services = info.context.services
    order_id = str(placed.stream_id)
    within = services.settings.stale_read_timeout
    stale = (
        f"order {order_id} was not confirmed or rejected within {within:g}s; it is still "
        "PLACED: watch it with orderChanged, or query order(id) later"
    )
    with client_errors({StaleRead: stale}):
        await fulfilment.decision(
            services.live, services.runner, services.store, order_id, placed.position, within
        )
    row = await order_queries.get_order(services.engine, order_id)
    return None if row is None else Order.of(row)
