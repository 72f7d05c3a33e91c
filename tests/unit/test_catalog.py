from __future__ import annotations

import pytest

from domain.catalog import (
    DECIDER,
    AddProduct,
    ChangeProductPrice,
    Event,
    ProductAdded,
    ProductPriceChanged,
    ProductRestocked,
    ReleaseStock,
    ReservedStockShipped,
    ReserveStock,
    RestockProduct,
    ShipReservedStock,
    StockReleased,
    StockReservationDeclined,
    StockReserved,
    claims,
    decide,
)
from domain.errors import NotFound, RuleViolated, ValidationFailed

ADDED = ProductAdded(product_id="p1", sku="SKU-1", name="Lamp", price_cents=1999, initial_stock=10)


def given(*events: Event):  # type: ignore[no-untyped-def]
    return DECIDER.fold(DECIDER.initial_state, list(events))


def test_add_product() -> None:
    command = AddProduct(
        product_id="p1", sku=" SKU-1 ", name=" Lamp ", price_cents=1999, initial_stock=10
    )
    assert decide(command, given()) == [ADDED]
    (claim,) = claims(command)
    assert (claim.scope, claim.key) == ("product-sku", "sku-1")


@pytest.mark.parametrize(
    "fields",
    [
        {"sku": ""},
        {"sku": "x" * 65},
        {"name": ""},
        {"name": "x" * 201},
        {"price_cents": -1},
        {"price_cents": 100_000_001},
        {"initial_stock": -1},
    ],
)
def test_add_product_refuses_bad_input(fields: dict[str, object]) -> None:
    values: dict[str, object] = {
        "product_id": "p1",
        "sku": "S",
        "name": "N",
        "price_cents": 0,
        "initial_stock": 0,
        **fields,
    }
    with pytest.raises(ValidationFailed):
        decide(AddProduct(**values), given())  # type: ignore[arg-type]


def test_price_bounds_are_accepted() -> None:
    assert decide(AddProduct(product_id="p", sku="S", name="N", price_cents=100_000_000), given())
    assert decide(AddProduct(product_id="p", sku="S", name="N", price_cents=0), given())


def test_adding_twice_is_refused() -> None:
    with pytest.raises(RuleViolated):
        decide(AddProduct(product_id="p1", sku="S", name="N", price_cents=1), given(ADDED))


@pytest.mark.parametrize(
    "command",
    [
        RestockProduct(product_id="p9", quantity=1),
        ChangeProductPrice(product_id="p9", price_cents=1),
        ReserveStock(product_id="p9", order_id="o1", quantity=1),
        ReleaseStock(product_id="p9", order_id="o1"),
        ShipReservedStock(product_id="p9", order_id="o1"),
    ],
)
def test_commands_on_an_unknown_product_are_not_found(command: object) -> None:
    with pytest.raises(NotFound):
        decide(command, given())  # type: ignore[arg-type]


def test_restock_by_a_positive_quantity() -> None:
    assert decide(RestockProduct(product_id="p1", quantity=5), given(ADDED)) == [
        ProductRestocked(product_id="p1", quantity=5)
    ]
    for quantity in (0, -3):
        with pytest.raises(ValidationFailed):
            decide(RestockProduct(product_id="p1", quantity=quantity), given(ADDED))


def test_change_price() -> None:
    state = given(ADDED)
    assert decide(ChangeProductPrice(product_id="p1", price_cents=2500), state) == [
        ProductPriceChanged(product_id="p1", price_cents=2500)
    ]
    assert decide(ChangeProductPrice(product_id="p1", price_cents=1999), state) == []
    with pytest.raises(ValidationFailed):
        decide(ChangeProductPrice(product_id="p1", price_cents=-5), state)


def test_reserve_within_available_stock() -> None:
    state = given(ADDED, StockReserved(product_id="p1", order_id="o1", quantity=7))
    assert state.available == 3 and state.reserved == 7
    assert decide(ReserveStock(product_id="p1", order_id="o2", quantity=3), state) == [
        StockReserved(product_id="p1", order_id="o2", quantity=3)
    ]


def test_a_reservation_beyond_available_stock_is_declined_and_recorded() -> None:
    state = given(ADDED, StockReserved(product_id="p1", order_id="o1", quantity=7))
    (declined,) = decide(ReserveStock(product_id="p1", order_id="o2", quantity=4), state)
    assert declined == StockReservationDeclined(
        product_id="p1", order_id="o2", quantity=4, available=3, sku="SKU-1"
    )
    assert DECIDER.evolve(state, declined) == state


def test_reserving_again_for_the_same_order() -> None:
    state = given(ADDED, StockReserved(product_id="p1", order_id="o1", quantity=2))
    assert decide(ReserveStock(product_id="p1", order_id="o1", quantity=2), state) == []
    with pytest.raises(RuleViolated):
        decide(ReserveStock(product_id="p1", order_id="o1", quantity=3), state)


def test_release_what_an_order_reserved() -> None:
    state = given(ADDED, StockReserved(product_id="p1", order_id="o1", quantity=4))
    assert decide(ReleaseStock(product_id="p1", order_id="o1"), state) == [
        StockReleased(product_id="p1", order_id="o1", quantity=4)
    ]
    assert decide(ReleaseStock(product_id="p1", order_id="o2"), state) == []  # holds nothing
    released = given(
        ADDED,
        StockReserved(product_id="p1", order_id="o1", quantity=4),
        StockReleased(product_id="p1", order_id="o1", quantity=4),
    )
    assert released.available == 10


def test_shipping_a_reservation_lowers_on_hand_and_reserved_alike() -> None:
    state = given(ADDED, StockReserved(product_id="p1", order_id="o1", quantity=4))
    (event,) = decide(ShipReservedStock(product_id="p1", order_id="o1"), state)
    assert event == ReservedStockShipped(product_id="p1", order_id="o1", quantity=4)
    after = DECIDER.evolve(state, event)
    assert (after.on_hand, after.reserved, after.available) == (6, 0, state.available)
    with pytest.raises(RuleViolated):
        decide(ShipReservedStock(product_id="p1", order_id="o1"), after)


def test_stock_never_goes_negative() -> None:
    state = given(ADDED)
    (declined,) = decide(ReserveStock(product_id="p1", order_id="o1", quantity=11), state)
    assert isinstance(declined, StockReservationDeclined)
    assert DECIDER.evolve(state, declined).available == 10
    with pytest.raises(ValidationFailed):
        decide(ReserveStock(product_id="p1", order_id="o1", quantity=0), state)
