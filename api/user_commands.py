"""Users' commands: mutations to commands of domain/users.py."""

from __future__ import annotations

import strawberry

from api.command_input import CommandInput, VersionedCommandInput
from api.commands import execute_input, new_stream_id
from api.context import Info
from api.types import CommandResult
from api.unset import optional
from domain import users


@strawberry.input
class RegisterUserInput(CommandInput):
    email: str
    name: str
    age: int
    subject: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="The token subject to bind the user to: admins only (default: the "
        "caller's own; in open mode, none).",
    )


@strawberry.input
class UpdateUserInput(VersionedCommandInput):
    user_id: strawberry.ID
    name: str | None = strawberry.UNSET
    age: int | None = strawberry.UNSET


@strawberry.type
class UserMutations:
    @strawberry.mutation
    async def register_user(self, info: Info, input: RegisterUserInput) -> CommandResult:
        user_id = new_stream_id("user", input.command_id)
        subject = optional(input.subject)
        command = users.RegisterUser(
            user_id=user_id,
            email=input.email,
            name=input.name,
            age=input.age,
            subject=info.context.identity.subject if subject is None else str(subject),
        )
        return await execute_input(info, users.DECIDER, user_id, command, input)

    @strawberry.mutation
    async def update_user(self, info: Info, input: UpdateUserInput) -> CommandResult:
        command = users.UpdateUser(
            user_id=input.user_id, name=optional(input.name), age=optional(input.age)
        )
        return await execute_input(info, users.DECIDER, str(input.user_id), command, input)
