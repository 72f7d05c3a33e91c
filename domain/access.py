"""Who may do what: the caller of a command, and the refusal when it may not.

A command's caller (`Actor`) is the verified identity the API saw, or the service itself (the
fulfilment process, tools). Each decider says, in `authorize`, which callers may send which of
its commands to a given state; the command handler asks it before `decide`, with the state it
loaded, so the rules are pure functions tested like every other rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.errors import DomainError

ADMIN = "admin"
USER = "user"
SYSTEM = "system"


class Forbidden(DomainError):
    """The caller is known but may not send this command; nothing is written."""

    code = "FORBIDDEN"


class SignInRequired(DomainError):
    """The command needs a signed-in caller and has none; nothing is written."""

    code = "UNAUTHENTICATED"


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who sends a command: a token's subject and roles. An admin may have no subject (the
    open mode's local admin); the service's own processes have the `system` role."""

    subject: str | None = None
    roles: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles or SYSTEM in self.roles

    @property
    def is_system(self) -> bool:
        return SYSTEM in self.roles


SERVICE = Actor(subject=None, roles=frozenset({SYSTEM}))
"""The service itself: what its own processes and tools act as."""


def signed_in(command: Any, state: Any, actor: Actor) -> None:
    """Anyone signed in (or an admin, or the service)."""
    if actor.subject is None and not actor.is_admin:
        raise SignInRequired("sign in to send commands")


def acting_as(actor: Actor, subject: str | None, what: str) -> None:
    """The caller acts as the user bound to `subject` (None: bound to none), or is an admin."""
    signed_in(None, None, actor)
    if actor.is_admin:
        return
    if subject is None or subject != actor.subject:
        raise Forbidden(f"you may {what}")


def require_admin(actor: Actor, what: str) -> None:
    signed_in(None, None, actor)
    if not actor.is_admin:
        raise Forbidden(f"only an admin may {what}")


def require_system(actor: Actor, what: str) -> None:
    """Commands only the service's own processes send (an admin may, to repair)."""
    require_admin(actor, what)


# ---------------------------------------------------------------- reading


def owns(actor: Actor, owner: str | None) -> bool:
    """Whether `actor` may read what the subject `owner` owns (None: owned by no one): its
    owner and admins may."""
    return actor.is_admin or (actor.subject is not None and owner == actor.subject)


def may_read(actor: Actor, owner: str | None, what: str) -> None:
    """Private data (a user's email and age) is read by its owner and by admins; anyone else
    is refused, an anonymous caller with SignInRequired."""
    if owns(actor, owner):
        return
    if actor.subject is None:
        raise SignInRequired(f"sign in to read {what}")
    raise Forbidden(f"only its owner or an admin may read {what}")


def read_scope(actor: Actor) -> str:
    """What decides everything `actor` may read, as a word: admins read alike, a user reads as
    its subject, and anonymous callers read alike. Callers of one scope may be handed the same
    results (the API shares pushes by it); never a token, which two sessions of one user
    differ in."""
    if actor.is_admin:
        return ADMIN
    if actor.subject is None:
        return "anonymous"
    return f"{USER}:{actor.subject}"


def require_signed_in(actor: Actor, what: str) -> None:
    """Reads that show each caller what it owns need a caller."""
    if actor.subject is None and not actor.is_admin:
        raise SignInRequired(f"sign in to read {what}")
