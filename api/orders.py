"""Order mutations: GraphQL input to commands of domain/orders.py."""

from __future__ import annotations

import uuid
from typing import Any

import strawberry

from api.commands import execute, optional
from api.context import Info
from api.lookups import catalog_entry, user_exists
from api.types import CommandResult
from domain import orders


@strawberry.input
class AddressInput:
    line1: str
    line2: str | None = strawberry.UNSET
    city: str
    postal_code: str
    country: str


@strawberry.input
class CreateOrderInput:
    customer_id: strawberry.ID
    shipping_address: AddressInput
    command_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class AddLineItemInput:
    order_id: strawberry.ID
    product_id: strawberry.ID
    quantity: int
    expected_version: int | None = strawberry.UNSET
    command_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class RemoveLineItemInput:
    order_id: strawberry.ID
    product_id: strawberry.ID
    expected_version: int | None = strawberry.UNSET
    command_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class PlaceOrderInput:
    order_id: strawberry.ID
    expected_version: int | None = strawberry.UNSET
    command_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class PayOrderInput:
    order_id: strawberry.ID
    amount_cents: int
    method: str
    expected_version: int | None = strawberry.UNSET
    command_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class ShipOrderInput:
    order_id: strawberry.ID
    carrier: str
    tracking_number: str
    expected_version: int | None = strawberry.UNSET
    command_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class DeliverOrderInput:
    order_id: strawberry.ID
    signed_by: str
    expected_version: int | None = strawberry.UNSET
    command_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class CancelOrderInput:
    order_id: strawberry.ID
    reason: str
    expected_version: int | None = strawberry.UNSET
    command_id: strawberry.ID | None = strawberry.UNSET


async def _on_order(info: Info, input: Any, command: orders.Command) -> CommandResult:
    return await execute(
        info,
        orders.DECIDER,
        str(input.order_id),
        command,
        expected_version=input.expected_version,
        command_id=input.command_id,
    )


@strawberry.type
class OrderMutations:
    @strawberry.mutation
    async def create_order(self, info: Info, input: CreateOrderInput) -> CommandResult:
        order_id = str(uuid.uuid4())
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
        return await execute(info, orders.DECIDER, order_id, command, command_id=input.command_id)

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
