"""What every command mutation's input ends with: `commandId`, and `expectedVersion` for a
command on an existing stream."""

from __future__ import annotations

from typing import Any

import strawberry


def _append_field(cls: type, name: str, annotation: Any) -> None:
    # Set on the input class itself, not inherited: strawberry puts a base's fields first, and
    # the contract has these last.
    if "__annotations__" not in cls.__dict__:
        cls.__annotations__ = {}
    cls.__dict__["__annotations__"][name] = annotation
    setattr(cls, name, strawberry.UNSET)


class CommandInput:
    """Base of a command's `@strawberry.input`: adds `commandId: ID`, after its own fields.

    A commandId makes the mutation idempotent: sent again with the same input, it replays the
    first result instead of running the command twice."""

    command_id: strawberry.ID | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _append_field(cls, "command_id", strawberry.ID | None)


class VersionedCommandInput(CommandInput):
    """Base of the input of a command on an existing stream: `expectedVersion: Int`, then
    `commandId: ID`, after its own fields. With an expectedVersion the command is refused
    when the stream has moved on since."""

    expected_version: int | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        _append_field(cls, "expected_version", int | None)
        super().__init_subclass__(**kwargs)
