"""Schema evolution on read: stored events are never rewritten, old shapes are upcast."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from store.errors import UnknownEventSchema

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]


class Upcasters:
    """Upcasters keyed by (event type, schema version), each lifting a payload one version.

    The registry of deciders (`store.serialization.Aggregates`) owns the service's one
    instance and fills it from each decider it registers; the event store reads through it.

    An event type's current version is the highest registered target (1 by default); a stored
    payload at version v passes through (type, v), (type, v + 1), ... up to it.
    """

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}
        self._current: dict[str, int] = {}

    def register(self, event_type: str, from_version: int, upcaster: Upcaster) -> None:
        """Lift `event_type` payloads from `from_version` to the next; one step per version."""
        if (event_type, from_version) in self._steps:
            raise ValueError(f"{event_type} already has an upcaster from version {from_version}")
        self._steps[(event_type, from_version)] = upcaster
        self._current[event_type] = max(self.current(event_type), from_version + 1)

    def register_all(self, upcasters: Mapping[tuple[str, int], Upcaster]) -> None:
        for (event_type, from_version), upcaster in upcasters.items():
            self.register(event_type, from_version, upcaster)

    def declare_current(self, event_type: str, version: int) -> None:
        self._current[event_type] = max(self.current(event_type), version)

    def current(self, event_type: str) -> int:
        return self._current.get(event_type, 1)

    def upcast(self, event_type: str, version: int, data: Payload) -> tuple[int, Payload]:
        target = self.current(event_type)
        while version < target:
            step = self._steps.get((event_type, version))
            if step is None:
                raise UnknownEventSchema(
                    f"no upcaster for {event_type} from schema version {version} to {target}"
                )
            data = step(data)
            version += 1
        return version, data
