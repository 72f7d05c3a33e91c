"""The User aggregate: registration with a unique email, and updates of name and age."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import assert_never

from domain.access import Actor, Forbidden, signed_in
from domain.decider import Claim, Decider
from domain.errors import NotFound, RuleViolated, ValidationFailed
from domain.text import quoted

STREAM_TYPE = "User"
EMAIL_SCOPE = "user-email"
SUBJECT_SCOPE = "user-subject"
"""A token subject holds one user: the claim that binds them."""
MIN_AGE, MAX_AGE = 13, 150
MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterUser:
    user_id: str
    email: str
    name: str
    age: int
    subject: str | None = None
    """The token subject the user is bound to: the caller's own, or (an admin's choice) any
    or none."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateUser:
    user_id: str
    name: str | None = None
    age: int | None = None


Command = RegisterUser | UpdateUser


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRegistered:
    user_id: str
    email: str
    name: str
    age: int
    subject: str | None = None
    """The token subject that acts as this user (None: bound to none, e.g. from open mode)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UserUpdated:
    """Carries only the fields that changed."""

    user_id: str
    name: str | None = None
    age: int | None = None


Event = UserRegistered | UserUpdated


# ---------------------------------------------------------------- state


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    registered: bool = False
    user_id: str = ""
    email: str = ""
    name: str = ""
    age: int = 0
    subject: str | None = None


INITIAL_STATE = User()


class AgeGroup(enum.StrEnum):
    """The age groups users are counted in; the values are stored in read models and are the
    GraphQL enum's."""

    TEEN = "TEEN"
    ADULT = "ADULT"
    SENIOR = "SENIOR"


def age_group(age: int) -> AgeGroup:
    """TEEN 13-19, ADULT 20-64, SENIOR 65 and over."""
    if age < 20:
        return AgeGroup.TEEN
    if age < 65:
        return AgeGroup.ADULT
    return AgeGroup.SENIOR


def normalise_email(email: str) -> str:
    """The form under which an email is unique: trimmed and lower case."""
    return email.strip().lower()


def _valid_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise ValidationFailed(f"name must be 1 to {MAX_NAME_LENGTH} characters")
    return name


def _valid_age(age: int) -> int:
    if not MIN_AGE <= age <= MAX_AGE:
        raise ValidationFailed(f"age must be between {MIN_AGE} and {MAX_AGE}, got {age}")
    return age


def _valid_email(email: str) -> str:
    email = email.strip()
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        raise ValidationFailed(f"email {quoted(email)} is not a valid address")
    return email


def decide(command: Command, state: User) -> Sequence[Event]:
    match command:
        case RegisterUser():
            if state.registered:
                raise RuleViolated(f"user {quoted(command.user_id)} is already registered")
            return [
                UserRegistered(
                    user_id=command.user_id,
                    email=_valid_email(command.email),
                    name=_valid_name(command.name),
                    age=_valid_age(command.age),
                    subject=command.subject,
                )
            ]
        case UpdateUser():
            if not state.registered:
                raise NotFound(f"user {quoted(command.user_id)} does not exist")
            if command.name is None and command.age is None:
                raise ValidationFailed("give a name, an age or both to update")
            name = None if command.name is None else _valid_name(command.name)
            age = None if command.age is None else _valid_age(command.age)
            changed_name = name if name is not None and name != state.name else None
            changed_age = age if age is not None and age != state.age else None
            if changed_name is None and changed_age is None:
                return []
            return [UserUpdated(user_id=state.user_id, name=changed_name, age=changed_age)]
        case _:
            assert_never(command)


def evolve(state: User, event: Event) -> User:
    match event:
        case UserRegistered():
            return User(
                registered=True,
                user_id=event.user_id,
                email=event.email,
                name=event.name,
                age=event.age,
                subject=event.subject,
            )
        case UserUpdated():
            return replace(
                state,
                name=state.name if event.name is None else event.name,
                age=state.age if event.age is None else event.age,
            )
        case _:
            assert_never(event)


def claims(command: Command) -> Sequence[Claim]:
    if isinstance(command, RegisterUser):
        email = Claim(
            scope=EMAIL_SCOPE,
            key=normalise_email(command.email),
            owner_id=command.user_id,
            taken=f"email {quoted(command.email.strip())} is already registered",
        )
        if command.subject is None:
            return [email]
        subject = Claim(
            scope=SUBJECT_SCOPE,
            key=command.subject,
            owner_id=command.user_id,
            taken=f"subject {quoted(command.subject)} already has a user (see `me`)",
        )
        return [email, subject]
    return ()


def authorize(command: Command, state: User, actor: Actor) -> None:
    """A user registers as themselves and updates only their own profile; an admin may
    register anyone (bound to any subject, or none) and update any profile."""
    signed_in(command, state, actor)
    if actor.is_admin:
        return
    match command:
        case RegisterUser():
            if command.subject != actor.subject:
                raise Forbidden("you may register only yourself")
        case UpdateUser():
            if state.subject is None or state.subject != actor.subject:
                raise Forbidden("you may update only your own profile")
        case _:
            assert_never(command)


DECIDER: Decider[Command, User, Event] = Decider(
    stream_type=STREAM_TYPE,
    state_type=User,
    initial_state=INITIAL_STATE,
    event_types=(UserRegistered, UserUpdated),
    decide=decide,
    evolve=evolve,
    claims=claims,
    authorize=authorize,
    owners={UserRegistered: "subject"},
)
