"""Running a command from a mutation: the one place refusals become GraphQL errors."""

from __future__ import annotations

from typing import Any

import strawberry

from api.context import Info
from api.errors import from_refusal, validation_failed
from api.types import CommandResult
from domain.decider import Decider

MAX_COMMAND_ID_LENGTH = 200


def optional(value: Any) -> Any:
    """An input field the client left out or sent as null, as None."""
    return None if value is strawberry.UNSET else value


async def execute(
    info: Info,
    decider: Decider[Any, Any, Any],
    stream_id: str,
    command: Any,
    *,
    expected_version: int | None = None,
    command_id: str | None = None,
) -> CommandResult:
    expected_version = optional(expected_version)
    command_id = optional(command_id)
    if command_id is not None and not 1 <= len(command_id) <= MAX_COMMAND_ID_LENGTH:
        raise validation_failed(f"commandId must be 1 to {MAX_COMMAND_ID_LENGTH} characters")
    if expected_version is not None and expected_version < 0:
        raise validation_failed("expectedVersion must be 0 or more")
    try:
        outcome = await info.context.services.handler.handle(
            decider,
            stream_id,
            command,
            expected_version=expected_version,
            context=info.context.command_context(command_id),
        )
    except Exception as error:
        refusal = from_refusal(error)
        if refusal is None:
            raise
        raise refusal from error
    return CommandResult.of(outcome)
