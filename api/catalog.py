"""The catalog: mutations to commands of domain/catalog.py, queries to the products view."""

from __future__ import annotations

import strawberry

from api.command_input import CommandInput, VersionedCommandInput
from api.commands import execute, new_stream_id, optional
from api.connection import Connection
from api.context import Info
from api.reads import caught_up, page_errors
from api.rows import from_row
from api.scalars import Position
from api.types import CommandResult
from domain import catalog
from projections import catalog_queries
from projections.catalog_queries import ProductRow


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
        return await execute(
            info,
            catalog.DECIDER,
            product_id,
            command,
            command_id=input.command_id,
            request=input,
        )

    @strawberry.mutation
    async def restock_product(self, info: Info, input: RestockProductInput) -> CommandResult:
        command = catalog.RestockProduct(product_id=input.product_id, quantity=input.quantity)
        return await execute(
            info,
            catalog.DECIDER,
            str(input.product_id),
            command,
            expected_version=input.expected_version,
            command_id=input.command_id,
            request=input,
        )

    @strawberry.mutation
    async def change_product_price(
        self, info: Info, input: ChangeProductPriceInput
    ) -> CommandResult:
        command = catalog.ChangeProductPrice(
            product_id=input.product_id, price_cents=input.price_cents
        )
        return await execute(
            info,
            catalog.DECIDER,
            str(input.product_id),
            command,
            expected_version=input.expected_version,
            command_id=input.command_id,
            request=input,
        )


@strawberry.type
class Product:
    id: strawberry.ID
    sku: str
    name: str
    price_cents: int
    stock_on_hand: int
    stock_reserved: int
    stock_available: int
    version: int

    @classmethod
    def of(cls, row: ProductRow) -> Product:
        return from_row(
            cls,
            row,
            stock_on_hand=row.on_hand,
            stock_reserved=row.reserved,
            stock_available=row.available,
        )


@strawberry.type
class CatalogQueries:
    @strawberry.field
    async def product(
        self, info: Info, id: strawberry.ID, min_position: Position | None = strawberry.UNSET
    ) -> Product | None:
        await caught_up(info, "products", min_position)
        row = await info.context.loaders.product.load(str(id))
        return None if row is None else Product.of(row)

    @strawberry.field
    async def products(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
        search: str | None = strawberry.UNSET,
        in_stock: bool | None = strawberry.UNSET,
        min_position: Position | None = strawberry.UNSET,
    ) -> Connection[Product]:
        await caught_up(info, "products", min_position)
        with page_errors():
            page = await catalog_queries.list_products(
                info.context.services.engine,
                first=20 if first is None else first,
                after=optional(after),
                search=optional(search),
                in_stock=optional(in_stock),
            )
        return Connection.of(page, Product.of)
