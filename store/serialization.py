"""Domain events and states to stored JSON and back, with upcasting on the way in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from domain.decider import CLAIMS, Decider
from store.events import NewEvent, RecordedEvent
from store.upcasting import Upcasters

CLAIM_STREAM_TYPE = CLAIMS.stream_type


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    """A decider as the store runs it: how often to snapshot, and the snapshot's shape."""

    decider: Decider[Any, Any, Any]
    snapshot_every: int | None = 100
    state_schema: int = 1


class Aggregates:
    """The registry of deciders by stream type, and the codec of their events."""

    def __init__(self, upcasters: Upcasters | None = None) -> None:
        self.upcasters = upcasters or Upcasters()
        self._registrations: dict[str, Registration] = {}
        self._event_types: dict[str, type[Any]] = {}
        self.register(CLAIMS, snapshot_every=None)

    def register(
        self,
        decider: Decider[Any, Any, Any],
        *,
        snapshot_every: int | None = 100,
        state_schema: int = 1,
    ) -> Registration:
        registration = Registration(
            decider=decider, snapshot_every=snapshot_every, state_schema=state_schema
        )
        self._registrations[decider.stream_type] = registration
        for event_type in decider.event_types:
            self._event_types[event_type.__name__] = event_type
        self.upcasters.register_all(decider.upcasters)
        for name, version in decider.schema_versions.items():
            self.upcasters.declare_current(name, version)
        return registration

    def registration(self, decider: Decider[Any, Any, Any]) -> Registration:
        return self._registrations.get(decider.stream_type) or self.register(decider)

    def for_stream_type(self, stream_type: str) -> Registration | None:
        return self._registrations.get(stream_type)

    def encode(self, event: Any) -> NewEvent:
        name = type(event).__name__
        return NewEvent(
            event_type=name,
            data=msgspec.to_builtins(event),
            schema_version=self.upcasters.current(name),
        )

    def decode(self, event: RecordedEvent) -> Any:
        """The domain event of a stored one (already upcast by the store)."""
        return msgspec.convert(event.data, self._event_types[event.event_type])


def encode_state(state: Any) -> dict[str, Any]:
    encoded = msgspec.to_builtins(state)
    assert isinstance(encoded, dict)
    return encoded


def decode_state(data: dict[str, Any], state_type: type[Any]) -> Any:
    return msgspec.convert(data, state_type)
