"""The catalog's commands: mutations to commands of domain/catalog.py."""

from __future__ import annotations

import strawberry

from api.command_input import CommandInput, VersionedCommandInput
from api.commands import execute_input, new_stream_id
from api.context import Info
from api.types import CommandResult
from domain import catalog


@strawberry.input
class AddProductInput(CommandInput):
    sku: str
    name: str
    price_cents: int
    initial_stock: int = 0


@strawberry.input
class RestockProductInput(VersionedCommandInput):
    product_id: strawberry.ID
    quantity: int


@strawberry.input
class ChangeProductPriceInput(VersionedCommandInput):
    product_id: strawberry.ID
    price_cents: int


@strawberry.type
class CatalogMutations:
    @strawberry.mutation
    async def add_product(self, info: Info, input: AddProductInput) -> CommandResult:
        product_id = new_stream_id("product", input.command_id)
        command = catalog.AddProduct(
            product_id=product_id,
            sku=input.sku,
            name=input.name,
            price_cents=input.price_cents,
            initial_stock=input.initial_stock,
        )
        return await execute_input(info, catalog.DECIDER, product_id, command, input)

    @strawberry.mutation
    async def restock_product(self, info: Info, input: RestockProductInput) -> CommandResult:
        command = catalog.RestockProduct(product_id=input.product_id, quantity=input.quantity)
        return await execute_input(info, catalog.DECIDER, str(input.product_id), command, input)

    @strawberry.mutation
    async def change_product_price(
        self, info: Info, input: ChangeProductPriceInput
    ) -> CommandResult:
        command = catalog.ChangeProductPrice(
            product_id=input.product_id, price_cents=input.price_cents
        )
        return await execute_input(info, catalog.DECIDER, str(input.product_id), command, input)
