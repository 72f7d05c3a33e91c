"""The registry of deciders fails loudly: no registration on first use, no shared names."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from api.app import build_aggregates
from domain import orders, users
from domain.decider import Decider
from store.events import RecordedEvent
from store.serialization import (
    Aggregates,
    DuplicateEventType,
    DuplicateStreamType,
    UnknownEventType,
    UnregisteredDecider,
)
from store.upcasting import Upcasters


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRegistered:
    """Not the users' event: a class of another module under the same name."""

    user_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Tally:
    count: int = 0


def counting(stream_type: str, *event_types: type[object]) -> Decider[object, Tally, object]:
    return Decider(
        stream_type=stream_type,
        state_type=Tally,
        initial_state=Tally(),
        event_types=event_types,
        decide=lambda command, state: [],
        evolve=lambda state, event: Tally(count=state.count + 1),
    )


def test_a_decider_never_registered_is_refused_not_registered() -> None:
    aggregates = Aggregates()
    aggregates.register(users.DECIDER)
    with pytest.raises(UnregisteredDecider, match="Order decider is not registered"):
        aggregates.registration(orders.DECIDER)
    with pytest.raises(UnregisteredDecider):
        aggregates.registration(orders.DECIDER)  # still not: nothing was registered on the way
    assert aggregates.for_stream_type("Order") is None
    assert aggregates.registration(users.DECIDER).decider is users.DECIDER


def test_another_decider_under_a_registered_stream_type_is_not_the_registered_one() -> None:
    aggregates = Aggregates()
    aggregates.register(users.DECIDER)
    with pytest.raises(UnregisteredDecider):
        aggregates.registration(replace(users.DECIDER, initial_state=users.INITIAL_STATE))


def test_a_stream_type_is_registered_once() -> None:
    aggregates = Aggregates()
    aggregates.register(users.DECIDER)
    with pytest.raises(DuplicateStreamType, match="User"):
        aggregates.register(users.DECIDER)


def test_two_deciders_may_not_share_an_event_class() -> None:
    aggregates = Aggregates()
    aggregates.register(users.DECIDER)
    with pytest.raises(DuplicateEventType, match="UserUpdated of Audit .* already User's"):
        aggregates.register(counting("Audit", users.UserUpdated))


def test_two_classes_may_not_share_an_event_type_name() -> None:
    aggregates = Aggregates()
    aggregates.register(users.DECIDER)
    with pytest.raises(DuplicateEventType, match="UserRegistered"):
        aggregates.register(counting("Imported", UserRegistered))
    with pytest.raises(DuplicateEventType, match="two event classes named UserRegistered"):
        Aggregates().register(counting("Mixed", users.UserRegistered, UserRegistered))


def test_a_refused_registration_registers_nothing() -> None:
    aggregates = Aggregates()
    aggregates.register(users.DECIDER)
    refused = counting("Audit", Tally, users.UserUpdated)
    with pytest.raises(DuplicateEventType):
        aggregates.register(refused)
    assert aggregates.for_stream_type("Audit") is None
    aggregates.register(counting("Audit", Tally))  # Tally's name is still free


def test_a_claims_event_name_is_taken_from_the_start() -> None:
    from domain.decider import KeyClaimed

    with pytest.raises(DuplicateEventType, match="KeyClaimed"):
        Aggregates().register(counting("Keys", KeyClaimed))


def test_upcasters_of_undeclared_event_types_are_refused() -> None:
    decider = replace(counting("Audit", Tally), upcasters={("Other", 1): lambda data: data})
    with pytest.raises(ValueError, match="Other"):
        Aggregates().register(decider)


def test_the_codec_knows_only_registered_event_types() -> None:
    aggregates = Aggregates()
    aggregates.register(users.DECIDER)
    event = users.UserUpdated(user_id="u1", name="Ada", age=None)
    assert aggregates.encode(event).event_type == "UserUpdated"
    with pytest.raises(UnknownEventType):
        aggregates.encode(UserRegistered(user_id="u1"))
    with pytest.raises(UnknownEventType, match="OrderCreated"):
        aggregates.decode(_recorded("OrderCreated"))


def test_the_composition_root_registers_every_aggregate_with_the_upcasters() -> None:
    aggregates = build_aggregates()
    for stream_type in ("User", "Product", "Order", "Post", "UniqueKey"):
        registration = aggregates.for_stream_type(stream_type)
        assert registration is not None
        assert aggregates.registration(registration.decider) is registration
    assert aggregates is not build_aggregates()  # each app builds its own


def _recorded(event_type: str) -> RecordedEvent:
    import uuid
    from datetime import UTC, datetime

    return RecordedEvent(
        position=1,
        event_id=uuid.uuid4(),
        stream_id="s",
        stream_type="Order",
        version=1,
        event_type=event_type,
        schema_version=1,
        data={},
        metadata={},
        recorded_at=datetime.now(UTC),
        transaction_id=1,
    )


def test_an_upcaster_step_is_registered_once() -> None:
    upcasters = Upcasters()
    upcasters.register("Renamed", 1, lambda data: data)
    with pytest.raises(ValueError, match="Renamed already has an upcaster from version 1"):
        upcasters.register("Renamed", 1, lambda data: data)
    assert upcasters.current("Renamed") == 2
