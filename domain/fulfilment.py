"""Order fulfilment: reserve every line's stock, then confirm the order, or release and reject.

A process manager as pure functions. `react(state, event, event_id)` takes the process's state
for one order and an event of that order's life or of its reservations, and returns the new
state and the commands to issue. Lines are reserved one at a time, in order: the next only
once the last is reserved, so a declined line leaves exactly the earlier ones to release.

Each command carries a command id derived from the id of the event that called for it: when
the same event is handled again (a crash before the process recorded its progress), the same
commands go out with the same ids, and the command handler, which has seen them, writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import assert_never

from domain import catalog, orders

NEW, RESERVING, CONFIRMED, REJECTED = "NEW", "RESERVING", "CONFIRMED", "REJECTED"
CANCELLED, SHIPPED = "CANCELLED", "SHIPPED"

Trigger = (
    orders.OrderPlaced
    | catalog.StockReserved
    | catalog.StockReservationDeclined
    | orders.OrderCancelled
    | orders.OrderShipped
)
"""The events the process reacts to."""

TRIGGERS: tuple[type[Trigger], ...] = (
    orders.OrderPlaced,
    catalog.StockReserved,
    catalog.StockReservationDeclined,
    orders.OrderCancelled,
    orders.OrderShipped,
)

Command = catalog.ReserveStock | catalog.ReleaseStock | catalog.ShipReservedStock | orders.Command


@dataclass(frozen=True, slots=True, kw_only=True)
class Issue:
    """A command to send, with the id that makes sending it twice harmless."""

    command: Command
    command_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Fulfilment:
    """Where one order's fulfilment stands."""

    order_id: str = ""
    status: str = NEW
    lines: tuple[orders.OrderedLine, ...] = ()
    next_line: int = 0
    """While RESERVING, the line whose reservation is awaited."""
    held: tuple[str, ...] = ()
    """Products whose stock is reserved for the order and not yet released or shipped."""


INITIAL_STATE = Fulfilment()


def _reserve(order_id: str, line: orders.OrderedLine, event_id: str) -> Issue:
    return Issue(
        command=catalog.ReserveStock(
            product_id=line.product_id, order_id=order_id, quantity=line.quantity
        ),
        command_id=f"{event_id}/reserve/{line.product_id}",
    )


def _release_all(state: Fulfilment, event_id: str) -> list[Issue]:
    return [
        Issue(
            command=catalog.ReleaseStock(product_id=product_id, order_id=state.order_id),
            command_id=f"{event_id}/release/{product_id}",
        )
        for product_id in reversed(state.held)
    ]


def _awaited(state: Fulfilment, product_id: str) -> bool:
    """Is `product_id` the line whose reservation the process is waiting for?"""
    return (
        state.status == RESERVING
        and state.next_line < len(state.lines)
        and state.lines[state.next_line].product_id == product_id
    )


def _reserved(
    state: Fulfilment, event: catalog.StockReserved, event_id: str
) -> tuple[Fulfilment, list[Issue]]:
    if state.status == CANCELLED:
        # A reservation under way when the order was cancelled: give it back.
        release = catalog.ReleaseStock(product_id=event.product_id, order_id=state.order_id)
        return state, [Issue(command=release, command_id=f"{event_id}/release/{event.product_id}")]
    if not _awaited(state, event.product_id):
        return state, []
    held = (*state.held, event.product_id)
    following = state.next_line + 1
    if following < len(state.lines):
        advanced = replace(state, next_line=following, held=held)
        return advanced, [_reserve(state.order_id, state.lines[following], event_id)]
    confirm = orders.ConfirmOrder(order_id=state.order_id)
    done = replace(state, status=CONFIRMED, next_line=following, held=held)
    return done, [Issue(command=confirm, command_id=f"{event_id}/confirm")]


def _declined(
    state: Fulfilment, event: catalog.StockReservationDeclined, event_id: str
) -> tuple[Fulfilment, list[Issue]]:
    if not _awaited(state, event.product_id):
        return state, []
    reason = (
        f"not enough stock of {event.sku}: {event.available} available, {event.quantity} requested"
    )
    reject = orders.RejectOrder(order_id=state.order_id, reason=reason)
    issues = [
        *_release_all(state, event_id),
        Issue(command=reject, command_id=f"{event_id}/reject"),
    ]
    return replace(state, status=REJECTED, held=()), issues


def react(state: Fulfilment, event: Trigger, event_id: str) -> tuple[Fulfilment, list[Issue]]:
    """The new state of the order's fulfilment after `event`, and the commands it calls for."""
    match event:
        case orders.OrderPlaced():
            if state.status != NEW or not event.lines:
                return state, []
            placed = Fulfilment(order_id=event.order_id, status=RESERVING, lines=event.lines)
            return placed, [_reserve(event.order_id, event.lines[0], event_id)]
        case catalog.StockReserved():
            return _reserved(state, event, event_id)
        case catalog.StockReservationDeclined():
            return _declined(state, event, event_id)
        case orders.OrderCancelled():
            if state.status == NEW:
                return state, []  # cancelled as a draft: nothing was reserved
            return replace(state, status=CANCELLED, held=()), _release_all(state, event_id)
        case orders.OrderShipped():
            ships = [
                Issue(
                    command=catalog.ShipReservedStock(
                        product_id=product_id, order_id=state.order_id
                    ),
                    command_id=f"{event_id}/ship/{product_id}",
                )
                for product_id in state.held
            ]
            return replace(state, status=SHIPPED, held=()), ships
        case _:
            assert_never(event)
