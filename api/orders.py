"""Orders, the read side: the type of the orders view and its queries (the commands are in
api/order_commands.py)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.catalog import Product
from api.connection import Connection
from api.context import Info
from api.money import Cents, ExactCents
from api.reads import also_caught_up, caught_up, page_errors
from api.rows import from_row
from api.scalars import Position
from api.scopes import own_user_id, reads_user
from api.unset import optional
from api.users import User
from domain import orders
from projections import order_queries
from projections.order_queries import OrderRow
from projections.pagination import Page, check_page_size

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
        await also_caught_up(info, "products")
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
        await also_caught_up(info, "users")
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
        if row is None or not await reads_user(info, row.customer_id):
            return None  # another user's order answers as one that does not exist
        return Order.of(row)

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
        customer = optional(customer_id)
        if not info.context.actor.is_admin:
            # A user's own orders only: another customer's are as if there were none.
            own = await own_user_id(info)
            if own is None or (customer is not None and customer != own):
                with page_errors():
                    check_page_size(20 if first is None else first)
                return Connection.of(Page(items=[], total_count=0, has_next_page=False), Order.of)
            customer = own
        with page_errors():
            page = await order_queries.list_orders(
                info.context.services.engine,
                first=20 if first is None else first,
                after=optional(after),
                customer_id=customer,
                status=None if chosen is None else chosen.value,
            )
        return Connection.of(page, Order.of)
