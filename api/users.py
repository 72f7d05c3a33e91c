"""User mutations: GraphQL input to a command of domain/users.py."""

from __future__ import annotations

import uuid

import strawberry

from api.commands import execute, optional
from api.context import Info
from api.types import CommandResult
from domain import users


@strawberry.input
class RegisterUserInput:
    email: str
    name: str
    age: int
    command_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class UpdateUserInput:
    user_id: strawberry.ID
    name: str | None = strawberry.UNSET
    age: int | None = strawberry.UNSET
    expected_version: int | None = strawberry.UNSET
    command_id: strawberry.ID | None = strawberry.UNSET


@strawberry.type
class UserMutations:
    @strawberry.mutation
    async def register_user(self, info: Info, input: RegisterUserInput) -> CommandResult:
        user_id = str(uuid.uuid4())
        command = users.RegisterUser(
            user_id=user_id, email=input.email, name=input.name, age=input.age
        )
        return await execute(info, users.DECIDER, user_id, command, command_id=input.command_id)

    @strawberry.mutation
    async def update_user(self, info: Info, input: UpdateUserInput) -> CommandResult:
        command = users.UpdateUser(
            user_id=input.user_id, name=optional(input.name), age=optional(input.age)
        )
        return await execute(
            info,
            users.DECIDER,
            str(input.user_id),
            command,
            expected_version=input.expected_version,
            command_id=input.command_id,
        )
