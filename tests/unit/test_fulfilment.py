"""The fulfilment process's decisions: given its state, when an event, then commands."""

from __future__ import annotations

from domain.catalog import (
    ReleaseStock,
    ReserveStock,
    ShipReservedStock,
    StockReservationDeclined,
    StockReserved,
)
from domain.fulfilment import (
    CANCELLED,
    CONFIRMED,
    INITIAL_STATE,
    REJECTED,
    RESERVING,
    SHIPPED,
    Fulfilment,
    Issue,
    Trigger,
    react,
)
from domain.orders import (
    ConfirmOrder,
    OrderCancelled,
    OrderedLine,
    OrderPlaced,
    OrderShipped,
    RejectOrder,
)

LINES = (
    OrderedLine(product_id="a", quantity=1),
    OrderedLine(product_id="b", quantity=2),
    OrderedLine(product_id="c", quantity=3),
)
PLACED = OrderPlaced(order_id="o1", lines=LINES, total_cents=100)


def reserved(product: str, quantity: int = 1) -> StockReserved:
    return StockReserved(product_id=product, order_id="o1", quantity=quantity)


def declined(product: str, quantity: int = 3, available: int = 1) -> StockReservationDeclined:
    return StockReservationDeclined(
        product_id=product, order_id="o1", quantity=quantity, available=available, sku="SKU-C"
    )


def run(*events: Trigger) -> tuple[Fulfilment, list[Issue]]:
    """Feed `events` in order (event ids e0, e1, ...); the last state and last commands."""
    state, issued = INITIAL_STATE, []
    for n, event in enumerate(events):
        state, issued = react(state, event, f"e{n}")
    return state, issued


def commands(issued: list[Issue]) -> list[object]:
    return [issue.command for issue in issued]


def test_placing_reserves_the_first_line_only() -> None:
    state, issued = run(PLACED)
    assert state.status == RESERVING
    assert issued == [
        Issue(
            command=ReserveStock(product_id="a", order_id="o1", quantity=1),
            command_id="e0/reserve/a",
        )
    ]


def test_each_reserved_line_reserves_the_next_then_the_order_is_confirmed() -> None:
    state, issued = run(PLACED, reserved("a"))
    assert commands(issued) == [ReserveStock(product_id="b", order_id="o1", quantity=2)]
    state, issued = run(PLACED, reserved("a"), reserved("b", 2))
    assert commands(issued) == [ReserveStock(product_id="c", order_id="o1", quantity=3)]
    state, issued = run(PLACED, reserved("a"), reserved("b", 2), reserved("c", 3))
    assert issued == [Issue(command=ConfirmOrder(order_id="o1"), command_id="e3/confirm")]
    assert (state.status, state.held) == (CONFIRMED, ("a", "b", "c"))


def test_a_declined_line_releases_the_earlier_ones_and_rejects_naming_the_product() -> None:
    state, issued = run(PLACED, reserved("a"), reserved("b", 2), declined("c"))
    assert commands(issued) == [
        ReleaseStock(product_id="b", order_id="o1"),
        ReleaseStock(product_id="a", order_id="o1"),
        RejectOrder(order_id="o1", reason="not enough stock of SKU-C: 1 available, 3 requested"),
    ]
    assert [i.command_id for i in issued] == ["e3/release/b", "e3/release/a", "e3/reject"]
    assert (state.status, state.held) == (REJECTED, ())


def test_the_same_event_again_calls_for_the_same_commands_with_the_same_ids() -> None:
    state, _ = run(PLACED, reserved("a"))
    assert react(state, reserved("b", 2), "e2") == react(state, reserved("b", 2), "e2")
    # A reservation the process is not waiting for (a repeat, another line) changes nothing.
    assert react(state, reserved("a"), "e9") == (state, [])
    assert react(state, reserved("c", 3), "e9") == (state, [])
    assert react(state, PLACED, "e9") == (state, [])


def test_cancelling_releases_what_is_held_and_a_late_reservation_too() -> None:
    state, issued = run(
        PLACED, reserved("a"), OrderCancelled(order_id="o1", reason="no", previous_status="PLACED")
    )
    assert commands(issued) == [ReleaseStock(product_id="a", order_id="o1")]
    assert state.status == CANCELLED
    # The reservation of b was under way: when it lands, it is given back.
    after, issued = react(state, reserved("b", 2), "e3")
    assert issued == [
        Issue(command=ReleaseStock(product_id="b", order_id="o1"), command_id="e3/release/b")
    ]
    assert react(after, declined("b"), "e4") == (after, [])


def test_cancelling_a_confirmed_order_releases_every_line() -> None:
    confirmed, _ = run(PLACED, reserved("a"), reserved("b", 2), reserved("c", 3))
    state, issued = react(
        confirmed, OrderCancelled(order_id="o1", reason="no", previous_status="PAID"), "x"
    )
    assert commands(issued) == [ReleaseStock(product_id=p, order_id="o1") for p in ("c", "b", "a")]
    assert state.held == ()


def test_cancelling_a_draft_asks_nothing() -> None:
    cancel = OrderCancelled(order_id="o1", reason="no", previous_status="DRAFT")
    assert react(INITIAL_STATE, cancel, "e0") == (INITIAL_STATE, [])


def test_shipping_turns_every_reservation_into_shipped_stock() -> None:
    confirmed, _ = run(PLACED, reserved("a"), reserved("b", 2), reserved("c", 3))
    state, issued = react(
        confirmed, OrderShipped(order_id="o1", carrier="UPS", tracking_number="1Z"), "s"
    )
    assert commands(issued) == [ShipReservedStock(product_id=p, order_id="o1") for p in "abc"]
    assert [i.command_id for i in issued] == ["s/ship/a", "s/ship/b", "s/ship/c"]
    assert (state.status, state.held) == (SHIPPED, ())
