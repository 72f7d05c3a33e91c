"""Product reviews: `reviewProduct` and the reviews of a product (a product's rating is
`Product.rating`, in api/catalog.py)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.command_input import CommandInput
from api.commands import execute_input
from api.connection import Connection
from api.context import Info
from api.lookups import catalog_entry, user_state
from api.reads import also_caught_up, caught_up, page_errors
from api.rows import from_row
from api.scalars import Position
from api.types import CommandResult
from api.unset import optional
from api.users import User
from domain import reviews
from projections import review_queries
from projections.review_queries import ReviewRow


@strawberry.type
class Review:
    id: strawberry.ID
    product_id: strawberry.ID
    user_id: strawberry.ID
    rating: int = strawberry.field(description="1 to 5.")
    text: str
    version: int
    created_at: datetime
    updated_at: datetime

    @strawberry.field
    async def user(self, info: Info) -> User | None:
        await also_caught_up(info, "users")
        row = await info.context.loaders.user.load(str(self.user_id))
        return None if row is None else User.of(row)

    @classmethod
    def of(cls, row: ReviewRow) -> Review:
        return from_row(cls, row)


@strawberry.input
class ReviewProductInput(CommandInput):
    product_id: strawberry.ID
    user_id: strawberry.ID
    rating: int = strawberry.field(description="1 to 5.")
    text: str


@strawberry.type
class ReviewQueries:
    @strawberry.field(description="A product's reviews, oldest first.")  # type: ignore[untyped-decorator]
    async def reviews(
        self,
        info: Info,
        product_id: strawberry.ID,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
        min_position: Position | None = strawberry.UNSET,
    ) -> Connection[Review]:
        await caught_up(info, "reviews", min_position)
        with page_errors():
            page = await review_queries.list_reviews(
                info.context.services.engine,
                product_id=str(product_id),
                first=20 if first is None else first,
                after=optional(after),
            )
        return Connection.of(page, Review.of)


@strawberry.type
class ReviewMutations:
    @strawberry.mutation(description="One review per user and product: a second is DUPLICATE.")  # type: ignore[untyped-decorator]
    async def review_product(self, info: Info, input: ReviewProductInput) -> CommandResult:
        product_id, user_id = str(input.product_id), str(input.user_id)
        user = await user_state(info, user_id)
        command = reviews.ReviewProduct(
            review_id=reviews.review_id(product_id, user_id),
            product_id=product_id,
            product_exists=await catalog_entry(info, product_id) is not None,
            user_id=user_id,
            user_exists=user.registered,
            user_subject=user.subject,
            rating=input.rating,
            text=input.text,
        )
        return await execute_input(info, reviews.DECIDER, command.review_id, command, input)
