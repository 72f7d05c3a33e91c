"""Running a command from a mutation; its refusals become GraphQL errors by api/errors.py."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import TypeVar

from api.command_input import CommandInput, VersionedCommandInput
from api.context import Info
from api.errors import client_errors, validation_failed
from api.types import CommandResult
from api.unset import optional
from domain.decider import Decider
from store.events import fingerprint

MAX_COMMAND_ID_LENGTH = 200

C = TypeVar("C")
S = TypeVar("S")
E = TypeVar("E")

_STREAM_IDS = uuid.UUID("4f0c2b8e-6a51-4d7e-9c1a-3b2d5e8f7a60")


def new_stream_id(kind: str, command_id: str | None) -> str:
    """The id of the stream a creating command starts: random, or named after the commandId
    so that sending the same request again targets the same stream (and replays)."""
    command_id = optional(command_id)
    if command_id is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_STREAM_IDS, f"{kind}:{command_id}"))


async def execute(
    info: Info,
    decider: Decider[C, S, E],
    stream_id: str,
    command: C,
    *,
    expected_version: int | None = None,
    command_id: str | None = None,
    request: object = None,
) -> CommandResult:
    """Run `command`, one of `decider`'s own, for a mutation. `request` is the client's input:
    with a commandId, a fingerprint of it (never of values the server filled in) tells a retry
    of the same request from a different command under a used id."""
    expected_version = optional(expected_version)
    command_id = optional(command_id)
    if command_id is not None and not 1 <= len(command_id) <= MAX_COMMAND_ID_LENGTH:
        raise validation_failed(f"commandId must be 1 to {MAX_COMMAND_ID_LENGTH} characters")
    if expected_version is not None and expected_version < 0:
        raise validation_failed("expectedVersion must be 0 or more")
    with client_errors():
        outcome = await info.context.services.handler.handle(
            decider,
            stream_id,
            command,
            expected_version=expected_version,
            context=replace(
                info.context.command_context(command_id),
                fingerprint=None
                if request is None or command_id is None
                else fingerprint(request, omit=("command_id",)),
            ),
        )
    return CommandResult.of(outcome)


async def execute_input(
    info: Info, decider: Decider[C, S, E], stream_id: str, command: C, input: CommandInput
) -> CommandResult:
    """`execute` for a mutation's input: its commandId, its expectedVersion when it has one,
    and the input itself as the request a retry under the same commandId is compared with."""
    expected_version = input.expected_version if isinstance(input, VersionedCommandInput) else None
    return await execute(
        info,
        decider,
        stream_id,
        command,
        expected_version=expected_version,
        command_id=input.command_id,
        request=input,
    )
