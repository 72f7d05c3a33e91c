"""The registry of deciders: the one object that owns the event codec and the upcasters.

The composition root builds it once and registers every decider the service runs. A stored
event type is the bare class name of a domain event, so a name may stand for one class of one
decider only: registering a second decider (or class) under a name already taken raises
`DuplicateEventType`, as a second decider for a stream type raises `DuplicateStreamType`.
Using a decider that was never registered raises `UnregisteredDecider`: nothing is registered
on first use, so a forgotten registration fails at once instead of snapshotting with defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import msgspec

from domain.decider import CLAIMS, Decider
from store.events import NewEvent, RecordedEvent
from store.upcasting import Upcasters

CLAIM_STREAM_TYPE = CLAIMS.stream_type

C = TypeVar("C")
S = TypeVar("S")
E = TypeVar("E")


class UnregisteredDecider(LookupError):
    """A decider was used that the registry was never given."""


class DuplicateStreamType(ValueError):
    """Two deciders were registered for one stream type."""


class DuplicateEventType(ValueError):
    """Two event classes, or two deciders, were registered under one stored event type name."""


class UnknownEventType(LookupError):
    """A stored event or a domain event whose type no registered decider declares."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration(Generic[C, S, E]):
    """A decider as the store runs it: how often to snapshot, and the snapshot's shape."""

    decider: Decider[C, S, E]
    snapshot_every: int | None = 100
    state_schema: int = 1


class Aggregates:
    """Every decider by stream type, the codec of their events and the upcasters of their
    stored schemas. `CLAIMS` (unique keys) is always registered."""

    def __init__(self) -> None:
        self._upcasters = Upcasters()
        self._registrations: dict[str, Registration[Any, Any, Any]] = {}
        self._event_types: dict[str, tuple[type[Any], str]] = {}
        self.register(CLAIMS, snapshot_every=None)

    @property
    def upcasters(self) -> Upcasters:
        """The upcasters of every registered decider: the event store reads through them."""
        return self._upcasters

    def register(
        self,
        decider: Decider[C, S, E],
        *,
        snapshot_every: int | None = 100,
        state_schema: int = 1,
    ) -> Registration[C, S, E]:
        """Run `decider` with this snapshot policy. Raises `DuplicateStreamType` or
        `DuplicateEventType` (and registers nothing) when a stream type or an event type name
        is taken, and `ValueError` for a schema version or upcaster of an event type the
        decider does not declare."""
        stream_type = decider.stream_type
        if stream_type in self._registrations:
            raise DuplicateStreamType(f"the stream type {stream_type} is already registered")
        names: dict[str, type[Any]] = {}
        for event_type in decider.event_types:
            name = event_type.__name__
            if names.setdefault(name, event_type) is not event_type:
                raise DuplicateEventType(
                    f"{stream_type} has two event classes named {name}: "
                    f"{_qualified(names[name])} and {_qualified(event_type)}"
                )
            if name in self._event_types:
                other, owner = self._event_types[name]
                raise DuplicateEventType(
                    f"the event type name {name} of {stream_type} ({_qualified(event_type)}) "
                    f"is already {owner}'s ({_qualified(other)}): stored events name their class"
                )
        upcast = {*decider.schema_versions, *(name for name, _ in decider.upcasters)}
        undeclared = upcast - set(names)
        if undeclared:
            raise ValueError(
                f"{stream_type} upcasts event types it does not declare: {sorted(undeclared)}"
            )
        registration = Registration(
            decider=decider, snapshot_every=snapshot_every, state_schema=state_schema
        )
        self._registrations[stream_type] = registration
        self._event_types.update((name, (cls, stream_type)) for name, cls in names.items())
        self._upcasters.register_all(decider.upcasters)
        for name, version in decider.schema_versions.items():
            self._upcasters.declare_current(name, version)
        return registration

    def registration(self, decider: Decider[C, S, E]) -> Registration[C, S, E]:
        """How `decider` is run. Raises `UnregisteredDecider` when it was never registered
        (or another decider holds its stream type)."""
        registration = self._registrations.get(decider.stream_type)
        if registration is None or registration.decider is not decider:
            raise UnregisteredDecider(
                f"the {decider.stream_type} decider is not registered: register it where the "
                "registry is built (api.app.build_aggregates)"
            )
        # The stored registration holds this very decider, so it has its types.
        return cast(Registration[C, S, E], registration)

    @property
    def registrations(self) -> tuple[Registration[Any, Any, Any], ...]:
        """Every registered decider's registration, in the order they were registered."""
        return tuple(self._registrations.values())

    def for_stream_type(self, stream_type: str) -> Registration[Any, Any, Any] | None:
        """The registration of a stream type read from the store, None for an unknown one."""
        return self._registrations.get(stream_type)

    def encode(self, event: object) -> NewEvent:
        """A domain event of a registered decider as a new stored event at its current schema."""
        name = type(event).__name__
        known = self._event_types.get(name)
        if known is None or known[0] is not type(event):
            raise UnknownEventType(f"{_qualified(type(event))} is no registered decider's event")
        return NewEvent(
            event_type=name,
            data=msgspec.to_builtins(event),
            schema_version=self._upcasters.current(name),
        )

    def decode(self, event: RecordedEvent) -> Any:
        """The domain event of a stored one (already upcast by the store)."""
        known = self._event_types.get(event.event_type)
        if known is None:
            raise UnknownEventType(f"no registered decider has the event type {event.event_type}")
        return decode_as(event.data, known[0])


def decode_as(data: Any, event_type: type[E]) -> E:
    """A stored payload (already upcast) as an instance of `event_type`: the codec's decoding."""
    return msgspec.convert(data, event_type)


def _qualified(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def encode_state(state: Any) -> dict[str, Any]:
    encoded = msgspec.to_builtins(state)
    assert isinstance(encoded, dict)
    return encoded


def decode_state(data: dict[str, Any], state_type: type[Any]) -> Any:
    return msgspec.convert(data, state_type)
