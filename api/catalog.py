"""The catalog, the read side: the type of the products view and its queries (the commands are
in api/catalog_commands.py)."""

from __future__ import annotations

import strawberry

from api.connection import Connection
from api.context import Info
from api.reads import also_caught_up, caught_up, page_errors
from api.rows import from_row
from api.scalars import Position
from api.unset import optional
from projections import catalog_queries, review_queries
from projections.catalog_queries import ProductRow
from projections.review_queries import RatingRow


@strawberry.type
class ProductRating:
    average: float | None = strawberry.field(description="Null until the first review.")
    count: int

    @classmethod
    async def load(cls, info: Info, product_id: str) -> ProductRating:
        await also_caught_up(info, "reviews")
        row = await info.context.loaders.of(review_queries.get_ratings).load(product_id)
        row = row or RatingRow()
        return cls(average=row.average, count=row.count)


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

    @strawberry.field(description="Its reviews' average and count (see `reviews`).")  # type: ignore[untyped-decorator]
    async def rating(self, info: Info) -> ProductRating:
        return await ProductRating.load(info, str(self.id))

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
