"""The shape every aggregate takes: a decider of pure functions.

A decider turns a command and the current state into new events (`decide`) and folds events
into state (`evolve`). `claims` names the unique keys a command reserves (an email, a SKU):
the command handler appends a claim to the key's own stream in the same transaction, so two
aggregates can never hold the same key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from domain.access import Actor, signed_in
from domain.errors import RuleViolated

C = TypeVar("C")
S = TypeVar("S")
E = TypeVar("E")

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """A unique key a command reserves for the aggregate `owner_id`.

    `scope` names the kind of key (`user-email`); `key` is its normalised value.
    """

    scope: str
    key: str
    owner_id: str
    taken: str = ""
    """What a client is told when the key is held already, in words they know (not stored)."""

    @property
    def stream_id(self) -> str:
        return f"{self.scope}:{self.key}"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyClaimed:
    """The event written to a claim's stream: the key now belongs to `owner_id`."""

    scope: str
    key: str
    owner_id: str


def no_claims(command: Any) -> Sequence[Claim]:
    return ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedKey:
    """The state of a claim's stream: who holds the key."""

    scope: str = ""
    key: str = ""
    owner_id: str = ""


def _claims_are_written_with_their_command(command: Any, state: ClaimedKey) -> Sequence[Any]:
    raise RuleViolated("a key is claimed only by the command that reserves it")


def _hold(state: ClaimedKey, event: KeyClaimed) -> ClaimedKey:
    return ClaimedKey(scope=event.scope, key=event.key, owner_id=event.owner_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decider(Generic[C, S, E]):
    """An aggregate as data: the command handler needs nothing else to run it.

    `event_types` lists every event class `evolve` accepts; their class names are the stored
    event types. `authorize` decides who may send a command to a state (domain/access.py).
    `owners` names the events that make a token subject the stream's owner.
    `schema_versions` gives an event type's current schema version when it is not 1, and
    `upcasters` turns a stored payload of (type, version) into version + 1.
    """

    stream_type: str
    state_type: type[S]
    initial_state: S
    event_types: tuple[type[E], ...]
    decide: Callable[[C, S], Sequence[E]]
    evolve: Callable[[S, E], S]
    claims: Callable[[C], Sequence[Claim]] = no_claims
    authorize: Callable[[C, S, Actor], None] = signed_in
    """Raises Forbidden (or SignInRequired) when the caller may not send the command to this
    state; by default anyone signed in may."""
    owners: Mapping[type[Any], str] = field(default_factory=dict)
    """The events that bind their stream to a token subject, each with the name of its field
    that holds the subject: the stream's owner, who may read its events besides admins."""
    schema_versions: Mapping[str, int] = field(default_factory=dict)
    upcasters: Mapping[tuple[str, int], Upcaster] = field(default_factory=dict)

    def fold(self, state: S, events: Sequence[E]) -> S:
        for event in events:
            state = self.evolve(state, event)
        return state


CLAIMS: Decider[Any, ClaimedKey, KeyClaimed] = Decider(
    stream_type="UniqueKey",
    state_type=ClaimedKey,
    initial_state=ClaimedKey(),
    event_types=(KeyClaimed,),
    decide=_claims_are_written_with_their_command,
    evolve=_hold,
)


def owner_fields(deciders: Iterable[Decider[Any, Any, Any]]) -> dict[str, str]:
    """Each stored event type that binds its stream to an owner, with the payload field that
    names the owner's token subject (see `Decider.owners`)."""
    return {
        event_type.__name__: name
        for decider in deciders
        for event_type, name in decider.owners.items()
    }
