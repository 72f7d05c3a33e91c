"""Orders' commands: mutations to commands of domain/orders.py."""

from __future__ import annotations

from typing import Any

import strawberry

from api.command_input import CommandInput, VersionedCommandInput
from api.commands import execute_input, new_stream_id
from api.context import Info
from api.lookups import catalog_entry, user_state
from api.money import Cents
from api.types import CommandResult
from api.unset import optional
from domain import orders


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
    return await execute_input(info, orders.DECIDER, str(input.order_id), command, input)


@strawberry.type
class OrderMutations:
    @strawberry.mutation
    async def create_order(self, info: Info, input: CreateOrderInput) -> CommandResult:
        order_id = new_stream_id("order", input.command_id)
        address = input.shipping_address
        customer = await user_state(info, str(input.customer_id))
        command = orders.CreateOrder(
            order_id=order_id,
            customer_id=input.customer_id,
            customer_exists=customer.registered,
            customer_subject=customer.subject,
            shipping_address=orders.Address(
                line1=address.line1,
                line2=optional(address.line2),
                city=address.city,
                postal_code=address.postal_code,
                country=address.country,
            ),
        )
        return await execute_input(info, orders.DECIDER, order_id, command, input)

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
