"""Why a decider refuses a command. Each maps to one GraphQL error code in the API."""

from __future__ import annotations


class DomainError(Exception):
    """A command refused by a rule of the domain; nothing is written."""

    code = "RULE_VIOLATED"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(DomainError):
    """The command's input has a bad shape or value (an age of 7, an empty name)."""

    code = "VALIDATION_FAILED"


class NotFound(DomainError):
    """The command targets an aggregate that does not exist."""

    code = "NOT_FOUND"


class RuleViolated(DomainError):
    """The command is well formed but the aggregate's state forbids it."""

    code = "RULE_VIOLATED"


class Duplicate(DomainError):
    """A value that must be unique (an email, a SKU) is already taken."""

    code = "DUPLICATE"
