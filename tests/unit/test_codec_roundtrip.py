"""Every event type the service registers survives the codec, and every upcaster lifts an old
payload to one that decodes (issue 12, item 9): a guard no new event type can be forgotten by.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.app import build_aggregates
from store.events import RecordedEvent
from store.serialization import Aggregates

AGGREGATES = build_aggregates()

EVENT_TYPES = sorted(
    {cls for r in AGGREGATES.registrations for cls in r.decider.event_types},
    key=lambda cls: cls.__name__,
)

OLD_PAYLOADS: dict[tuple[str, int], dict[str, Any]] = {}
"""A stored payload of each upcaster's (event type, schema version), as it was written then.
Registering an upcaster means adding one here."""


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    """Values of a domain event field's type: the kinds of fields domain events have."""
    origin = typing.get_origin(hint)
    if hint is type(None):
        return st.none()
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for(arg) for arg in typing.get_args(hint)))
    if origin is tuple:
        item, *rest = typing.get_args(hint)
        assert rest == [Ellipsis], hint
        return st.lists(strategy_for(item), max_size=3).map(tuple)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(hint)
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(min_value=-(2**53), max_value=2**53)
    if hint is str:
        return st.text(max_size=20)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return instances(hint)
    raise TypeError(f"no strategy for the field type {hint!r}: teach strategy_for about it")


def instances(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(cls)}
    return st.fixed_dictionaries(fields).map(lambda values: cls(**values))


def stored(aggregates: Aggregates, event: object) -> RecordedEvent:
    """`event` encoded and read back as the store would: through JSON."""
    new = aggregates.encode(event)
    return RecordedEvent(
        position=1,
        event_id=new.event_id,
        stream_id="s-1",
        stream_type="Test",
        version=1,
        event_type=new.event_type,
        schema_version=new.schema_version,
        data=json.loads(json.dumps(new.data)),
        metadata={},
        transaction_id=1,
        recorded_at=datetime.now(UTC),
    )


def test_the_service_registers_event_types() -> None:
    names = {cls.__name__ for cls in EVENT_TYPES}
    assert {"UserRegistered", "OrderPlaced", "ProductAdded", "PostCreated"} <= names


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda cls: cls.__name__)
def test_every_event_type_survives_the_codec(event_type: type[Any]) -> None:
    @settings(max_examples=30, deadline=None)
    @given(instances(event_type))
    def round_trip(event: object) -> None:
        record = stored(AGGREGATES, event)
        assert record.event_type == event_type.__name__
        assert AGGREGATES.decode(record) == event

    round_trip()


UPCASTERS = sorted(
    (key for r in AGGREGATES.registrations for key in r.decider.upcasters),
)


def test_every_upcaster_has_an_old_payload() -> None:
    assert set(UPCASTERS) == set(OLD_PAYLOADS)


def test_every_upcaster_lifts_an_old_payload_to_one_that_decodes() -> None:
    for event_type, version in UPCASTERS:
        current, data = AGGREGATES.upcasters.upcast(
            event_type, version, OLD_PAYLOADS[(event_type, version)]
        )
        assert current == AGGREGATES.upcasters.current(event_type)
        record = RecordedEvent(
            position=1,
            event_id=uuid4(),
            stream_id="s-1",
            stream_type="Test",
            version=1,
            event_type=event_type,
            schema_version=current,
            data=data,
            metadata={},
            transaction_id=1,
            recorded_at=datetime.now(UTC),
        )
        decoded = AGGREGATES.decode(record)
        assert AGGREGATES.decode(stored(AGGREGATES, decoded)) == decoded
