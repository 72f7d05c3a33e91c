from __future__ import annotations

from typing import Any

import pytest

from domain.errors import NotFound, RuleViolated, ValidationFailed
from domain.orders import (
    DECIDER,
    AddLineItem,
    Address,
    CancelOrder,
    CatalogEntry,
    ConfirmOrder,
    CreateOrder,
    DeliverOrder,
    Event,
    LineItemAdded,
    LineItemRemoved,
    Order,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderDelivered,
    OrderedLine,
    OrderPaid,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
    PayOrder,
    PlaceOrder,
    RejectOrder,
    RemoveLineItem,
    ShipOrder,
    decide,
)

ADDRESS = Address(line1="1 Main St", city="Springfield", postal_code="12345", country="US")
LAMP = CatalogEntry(sku="LAMP", name="Lamp", unit_price_cents=1500)
CREATED = OrderCreated(order_id="o1", customer_id="u1", shipping_address=ADDRESS)
LINE = LineItemAdded(
    order_id="o1", product_id="p1", sku="LAMP", name="Lamp", quantity=2, unit_price_cents=1500
)
PLACED = OrderPlaced(
    order_id="o1", lines=(OrderedLine(product_id="p1", quantity=2),), total_cents=3000
)
HISTORY: dict[str, list[Event]] = {
    "DRAFT": [CREATED, LINE],
    "PLACED": [CREATED, LINE, PLACED],
    "CONFIRMED": [CREATED, LINE, PLACED, OrderConfirmed(order_id="o1")],
    "REJECTED": [CREATED, LINE, PLACED, OrderRejected(order_id="o1", reason="no stock")],
}
HISTORY["PAID"] = [
    *HISTORY["CONFIRMED"],
    OrderPaid(order_id="o1", amount_cents=3000, method="card"),
]
HISTORY["SHIPPED"] = [
    *HISTORY["PAID"],
    OrderShipped(order_id="o1", carrier="UPS", tracking_number="1Z"),
]
HISTORY["DELIVERED"] = [*HISTORY["SHIPPED"], OrderDelivered(order_id="o1", signed_by="Ann")]
HISTORY["CANCELLED"] = [
    CREATED,
    OrderCancelled(order_id="o1", reason="changed mind", previous_status="DRAFT"),
]


def given(*events: Event) -> Order:
    return DECIDER.fold(DECIDER.initial_state, list(events))


def at(status: str) -> Order:
    state = given(*HISTORY[status])
    assert state.status == status
    return state


# Each command and the statuses it is allowed from.
TRANSITIONS: dict[str, tuple[Any, set[str]]] = {
    "add": (AddLineItem(order_id="o1", product_id="p2", quantity=1, product=LAMP), {"DRAFT"}),
    "remove": (RemoveLineItem(order_id="o1", product_id="p1"), {"DRAFT"}),
    "place": (PlaceOrder(order_id="o1"), {"DRAFT"}),
    "confirm": (ConfirmOrder(order_id="o1"), {"PLACED"}),
    "reject": (RejectOrder(order_id="o1", reason="no stock"), {"PLACED"}),
    "pay": (PayOrder(order_id="o1", amount_cents=3000, method="card"), {"CONFIRMED"}),
    "ship": (ShipOrder(order_id="o1", carrier="UPS", tracking_number="1Z"), {"PAID"}),
    "deliver": (DeliverOrder(order_id="o1", signed_by="Ann"), {"SHIPPED"}),
    "cancel": (
        CancelOrder(order_id="o1", reason="changed mind"),
        {"DRAFT", "PLACED", "CONFIRMED", "PAID"},
    ),
}


@pytest.mark.parametrize("status", sorted(HISTORY))
@pytest.mark.parametrize("name", sorted(TRANSITIONS))
def test_every_transition_is_allowed_only_from_its_statuses(name: str, status: str) -> None:
    command, allowed = TRANSITIONS[name]
    if status in allowed:
        assert decide(command, at(status))
    else:
        with pytest.raises(RuleViolated):
            decide(command, at(status))


def test_create_needs_an_existing_customer_and_a_complete_address() -> None:
    assert decide(
        CreateOrder(
            order_id="o1", customer_id="u1", customer_exists=True, shipping_address=ADDRESS
        ),
        given(),
    ) == [CREATED]
    with pytest.raises(NotFound):
        decide(
            CreateOrder(
                order_id="o1", customer_id="x", customer_exists=False, shipping_address=ADDRESS
            ),
            given(),
        )
    for field in ("line1", "city", "postal_code", "country"):
        incomplete = Address(
            **{"line1": "a", "city": "b", "postal_code": "c", "country": "d", field: " "}
        )
        with pytest.raises(ValidationFailed):
            decide(
                CreateOrder(
                    order_id="o1",
                    customer_id="u1",
                    customer_exists=True,
                    shipping_address=incomplete,
                ),
                given(),
            )


def test_lines_capture_the_catalog_price_and_merge_by_product() -> None:
    state = given(CREATED)
    assert decide(AddLineItem(order_id="o1", product_id="p1", quantity=2, product=LAMP), state) == [
        LINE
    ]
    cheaper = CatalogEntry(sku="LAMP", name="Lamp", unit_price_cents=1)
    (more,) = decide(
        AddLineItem(order_id="o1", product_id="p1", quantity=3, product=cheaper),
        given(CREATED, LINE),
    )
    after = DECIDER.evolve(given(CREATED, LINE), more)
    assert [(line.quantity, line.unit_price_cents) for line in after.lines] == [(5, 1500)]
    assert after.total_cents == 7500


@pytest.mark.parametrize("quantity", [0, -1, 1001])
def test_line_quantity_bounds(quantity: int) -> None:
    with pytest.raises(ValidationFailed):
        decide(
            AddLineItem(order_id="o1", product_id="p1", quantity=quantity, product=LAMP),
            given(CREATED),
        )


def test_a_line_holds_at_most_1000_units() -> None:
    full = given(
        CREATED,
        LineItemAdded(
            order_id="o1", product_id="p1", sku="L", name="L", quantity=1000, unit_price_cents=1
        ),
    )
    with pytest.raises(RuleViolated):
        decide(AddLineItem(order_id="o1", product_id="p1", quantity=1, product=LAMP), full)


def test_an_order_holds_at_most_100_lines() -> None:
    lines = [
        LineItemAdded(
            order_id="o1", product_id=f"p{i}", sku="S", name="N", quantity=1, unit_price_cents=1
        )
        for i in range(100)
    ]
    full = given(CREATED, *lines)
    with pytest.raises(RuleViolated):
        decide(AddLineItem(order_id="o1", product_id="p-new", quantity=1, product=LAMP), full)
    assert decide(AddLineItem(order_id="o1", product_id="p0", quantity=1, product=LAMP), full)


def test_an_unknown_product_is_not_found() -> None:
    with pytest.raises(NotFound):
        decide(
            AddLineItem(order_id="o1", product_id="p9", quantity=1, product=None), given(CREATED)
        )


def test_removing_a_line_that_is_not_there_is_refused() -> None:
    assert decide(RemoveLineItem(order_id="o1", product_id="p1"), at("DRAFT")) == [
        LineItemRemoved(order_id="o1", product_id="p1")
    ]
    with pytest.raises(RuleViolated):
        decide(RemoveLineItem(order_id="o1", product_id="p9"), at("DRAFT"))


def test_placing_needs_a_line() -> None:
    with pytest.raises(RuleViolated):
        decide(PlaceOrder(order_id="o1"), given(CREATED))
    assert decide(PlaceOrder(order_id="o1"), at("DRAFT")) == [PLACED]


def test_payment_must_be_the_exact_total() -> None:
    for amount in (2999, 3001):
        with pytest.raises(RuleViolated):
            decide(PayOrder(order_id="o1", amount_cents=amount, method="card"), at("CONFIRMED"))


@pytest.mark.parametrize(
    "command",
    [
        ShipOrder(order_id="o1", carrier=" ", tracking_number="1Z"),
        ShipOrder(order_id="o1", carrier="UPS", tracking_number=""),
    ],
)
def test_shipping_needs_carrier_and_tracking(command: ShipOrder) -> None:
    with pytest.raises(ValidationFailed):
        decide(command, at("PAID"))


def test_delivery_needs_a_signature_and_cancel_a_reason() -> None:
    with pytest.raises(ValidationFailed):
        decide(DeliverOrder(order_id="o1", signed_by=""), at("SHIPPED"))
    with pytest.raises(ValidationFailed):
        decide(CancelOrder(order_id="o1", reason=" "), at("DRAFT"))


def test_the_full_life_of_an_order() -> None:
    state = at("DELIVERED")
    assert (state.paid_cents, state.carrier, state.tracking_number, state.signed_by) == (
        3000,
        "UPS",
        "1Z",
        "Ann",
    )
    assert at("REJECTED").rejection_reason == "no stock"
    assert at("CANCELLED").cancellation_reason == "changed mind"


def test_commands_on_an_unknown_order_are_not_found() -> None:
    with pytest.raises(NotFound):
        decide(PlaceOrder(order_id="o9"), given())
    with pytest.raises(RuleViolated):
        decide(
            CreateOrder(
                order_id="o1", customer_id="u1", customer_exists=True, shipping_address=ADDRESS
            ),
            given(CREATED),
        )


def _lines(count: int, quantity: int, unit_price_cents: int) -> list[LineItemAdded]:
    return [
        LineItemAdded(
            order_id="o1",
            product_id=f"p{i}",
            sku="S",
            name="N",
            quantity=quantity,
            unit_price_cents=unit_price_cents,
        )
        for i in range(count)
    ]


def test_an_order_total_above_32_bits_is_accepted() -> None:
    top = CatalogEntry(sku="TOP", name="Top", unit_price_cents=100_000_000)
    (added,) = decide(
        AddLineItem(order_id="o1", product_id="p1", quantity=22, product=top), given(CREATED)
    )
    state = DECIDER.evolve(given(CREATED), added)
    assert state.total_cents == 2_200_000_000 > 2**31 - 1
    (placed,) = decide(PlaceOrder(order_id="o1"), state)
    assert isinstance(placed, OrderPlaced) and placed.total_cents == 2_200_000_000


def test_an_order_total_is_at_most_ten_billion_dollars() -> None:
    # Nine full lines at the catalog's top price, and room for 1,000 more units of it.
    nine = given(CREATED, *_lines(9, 1000, 100_000_000))
    assert nine.total_cents == 900_000_000_000
    top = CatalogEntry(sku="TOP", name="Top", unit_price_cents=100_000_000)
    at_the_limit = decide(
        AddLineItem(order_id="o1", product_id="p-top", quantity=1000, product=top), nine
    )
    full = DECIDER.fold(nine, list(at_the_limit))
    assert full.total_cents == 1_000_000_000_000
    cent = CatalogEntry(sku="CENT", name="Cent", unit_price_cents=1)
    with pytest.raises(ValidationFailed, match="at most 1000000000000 cents") as refused:
        decide(AddLineItem(order_id="o1", product_id="p-cent", quantity=1, product=cent), full)
    assert "1000000000001" in str(refused.value)
    # Growing a line already there is held to the same limit, at its captured price.
    grown = DECIDER.fold(
        nine,
        [
            LineItemAdded(
                order_id="o1",
                product_id="p-cent",
                sku="C",
                name="C",
                quantity=1,
                unit_price_cents=1,
            ),
            LineItemAdded(
                order_id="o1",
                product_id="p-top",
                sku="TOP",
                name="Top",
                quantity=999,
                unit_price_cents=100_000_000,
            ),
        ],
    )
    assert grown.total_cents == 999_900_000_001
    with pytest.raises(ValidationFailed, match="would be 1000000000001 cents"):
        decide(AddLineItem(order_id="o1", product_id="p-top", quantity=1, product=cent), grown)


def test_a_draft_over_the_limit_from_before_it_cannot_be_placed_but_can_shrink() -> None:
    legacy = given(CREATED, *_lines(11, 1000, 100_000_000))
    assert legacy.total_cents == 1_100_000_000_000
    with pytest.raises(ValidationFailed, match="at most 1000000000000 cents"):
        decide(PlaceOrder(order_id="o1"), legacy)
    assert decide(RemoveLineItem(order_id="o1", product_id="p0"), legacy)


def test_an_order_above_32_bits_is_paid_its_exact_total() -> None:
    big = 1000 * 100_000_000  # one line of 1,000 units at the catalog's top price
    history: list[Event] = [
        CREATED,
        *_lines(1, 1000, 100_000_000),
        OrderPlaced(
            order_id="o1", lines=(OrderedLine(product_id="p0", quantity=1000),), total_cents=big
        ),
        OrderConfirmed(order_id="o1"),
    ]
    assert decide(PayOrder(order_id="o1", amount_cents=big, method="wire"), given(*history)) == [
        OrderPaid(order_id="o1", amount_cents=100_000_000_000, method="wire")
    ]
