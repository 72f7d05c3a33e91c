"""Users, the read side: the types of the users read models and their queries (the commands
are in api/user_commands.py)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.connection import Connection
from api.context import Info
from api.errors import client_errors
from api.lookups import user_of_subject
from api.reads import caught_up, page_errors
from api.rows import from_row
from api.scalars import Position
from api.scopes import reads_user
from api.unset import optional
from domain import users
from domain.access import may_read, require_admin
from projections import user_queries
from projections.user_queries import UserRow

# The domain's age groups, as the GraphQL enum of the same name and values.
AgeGroup = users.AgeGroup
strawberry.enum(AgeGroup, name="AgeGroup")


async def _private(info: Info, user_id: str, what: str) -> None:
    """Refuse (at the field's path) a caller who may not read the user's private `what`."""
    if await reads_user(info, user_id):
        return
    with client_errors():
        may_read(info.context.actor, None, what)


async def _email(root: User, info: Info) -> str:
    await _private(info, str(root.id), "a user's email")
    return root.private.email


async def _age(root: User, info: Info) -> int:
    await _private(info, str(root.id), "a user's age")
    return root.private.age


PRIVATE = "Read by the user and by admins; FORBIDDEN to anyone else."


@strawberry.type
class User:
    id: strawberry.ID
    email: str = strawberry.field(resolver=_email, description=PRIVATE)
    name: str
    age: int = strawberry.field(resolver=_age, description=PRIVATE)
    age_group: AgeGroup
    version: int
    created_at: datetime
    updated_at: datetime
    private: strawberry.Private[UserRow]

    @classmethod
    def of(cls, row: UserRow) -> User:
        return from_row(cls, row, age_group=AgeGroup(row.age_group), private=row)


@strawberry.type
class AgeGroupCount:
    age_group: AgeGroup
    count: int


@strawberry.type
class UserSummary:
    total_users: int
    average_age: float | None = strawberry.field(description="Null when there are no users.")
    users_by_age_group: list[AgeGroupCount]


@strawberry.type
class UserQueries:
    @strawberry.field(description="The caller's own user: null when signed out or not registered.")  # type: ignore[untyped-decorator]
    async def me(self, info: Info, min_position: Position | None = strawberry.UNSET) -> User | None:
        subject = info.context.identity.subject
        if subject is None:
            return None
        user_id = await user_of_subject(info, subject)
        if user_id is None:
            return None
        await caught_up(info, "users", min_position)
        row = await info.context.loaders.user.load(user_id)
        return None if row is None else User.of(row)

    @strawberry.field
    async def user(
        self, info: Info, id: strawberry.ID, min_position: Position | None = strawberry.UNSET
    ) -> User | None:
        await caught_up(info, "users", min_position)
        row = await info.context.loaders.user.load(str(id))
        return None if row is None else User.of(row)

    @strawberry.field
    async def users(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
        search: str | None = strawberry.UNSET,
        min_age: int | None = strawberry.UNSET,
        max_age: int | None = strawberry.UNSET,
        age_group: AgeGroup | None = strawberry.UNSET,
        min_position: Position | None = strawberry.UNSET,
    ) -> Connection[User]:
        await caught_up(info, "users", min_position)
        group = optional(age_group)
        reads_private = info.context.actor.is_admin
        if not reads_private and (optional(min_age) is not None or optional(max_age) is not None):
            with client_errors():
                may_read(info.context.actor, None, "users' ages (minAge, maxAge)")
        with page_errors():
            page = await user_queries.list_users(
                info.context.services.engine,
                first=20 if first is None else first,
                after=optional(after),
                search=optional(search),
                search_emails=reads_private,
                min_age=optional(min_age),
                max_age=optional(max_age),
                age_group=None if group is None else group.value,
            )
        return Connection.of(page, User.of)

    @strawberry.field
    async def user_summary(
        self, info: Info, min_position: Position | None = strawberry.UNSET
    ) -> UserSummary:
        with client_errors():
            require_admin(info.context.actor, "read the user summary")
        await caught_up(info, "user_summary", min_position)
        summary = await user_queries.user_summary(info.context.services.engine)
        return UserSummary(
            total_users=summary.total_users,
            average_age=summary.average_age,
            users_by_age_group=[
                AgeGroupCount(age_group=AgeGroup(group), count=count)
                for group, count in summary.by_age_group.items()
            ],
        )
