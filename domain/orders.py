"""The Order aggregate: a draft filled with lines, placed, confirmed, paid, shipped, delivered.

Facts about other aggregates (does the customer exist, what does the product cost now) come in
on the command, read by the caller from the store: the decider stays pure, and the price is
always the catalog's, never the client's.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import assert_never

from domain.access import Actor, acting_as, require_admin, require_system, signed_in
from domain.decider import Decider
from domain.errors import NotFound, RuleViolated, ValidationFailed
from domain.text import quoted

STREAM_TYPE = "Order"
MAX_QUANTITY = 1_000
MAX_LINES = 100
MAX_TEXT = 200
MAX_ORDER_TOTAL_CENTS = 1_000_000_000_000
"""The largest order total the domain accepts: $10,000,000,000.00. Above 2^31-1, so an order of
22 units at the catalog's top price is fine, and far below 2^53: every total is exact as a JSON
number in any client, and as a 64-bit integer in SQL."""


class OrderStatus(enum.StrEnum):
    """Where an order is; the values are stored (in events, snapshots and read models) and are
    the GraphQL enum's, so they never change."""

    DRAFT = "DRAFT"
    PLACED = "PLACED"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"


DRAFT, PLACED, CONFIRMED, REJECTED = (
    OrderStatus.DRAFT,
    OrderStatus.PLACED,
    OrderStatus.CONFIRMED,
    OrderStatus.REJECTED,
)
PAID, SHIPPED, DELIVERED, CANCELLED = (
    OrderStatus.PAID,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
    OrderStatus.CANCELLED,
)
CANCELLABLE = frozenset({DRAFT, PLACED, CONFIRMED, PAID})


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    line1: str
    line2: str | None = None
    city: str
    postal_code: str
    country: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogEntry:
    """What the catalog says of a product when it is added to an order."""

    sku: str
    name: str
    unit_price_cents: int


# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateOrder:
    order_id: str
    customer_id: str
    customer_exists: bool
    shipping_address: Address
    customer_subject: str | None = None
    """The token subject the customer is bound to (looked up by the API)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AddLineItem:
    order_id: str
    product_id: str
    quantity: int
    product: CatalogEntry | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveLineItem:
    order_id: str
    product_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceOrder:
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmOrder:
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectOrder:
    order_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PayOrder:
    order_id: str
    amount_cents: int
    method: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipOrder:
    order_id: str
    carrier: str
    tracking_number: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverOrder:
    order_id: str
    signed_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelOrder:
    order_id: str
    reason: str


Command = (
    CreateOrder
    | AddLineItem
    | RemoveLineItem
    | PlaceOrder
    | ConfirmOrder
    | RejectOrder
    | PayOrder
    | ShipOrder
    | DeliverOrder
    | CancelOrder
)


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCreated:
    order_id: str
    customer_id: str
    shipping_address: Address
    customer_subject: str | None = None
    """The token subject that may manage the order (besides admins)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LineItemAdded:
    order_id: str
    product_id: str
    sku: str
    name: str
    quantity: int
    """The quantity added (a line already in the order grows by it)."""
    unit_price_cents: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LineItemRemoved:
    order_id: str
    product_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderedLine:
    product_id: str
    quantity: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPlaced:
    """Carries the lines, so the fulfilment process can reserve from the event alone."""

    order_id: str
    lines: tuple[OrderedLine, ...]
    total_cents: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderConfirmed:
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRejected:
    order_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPaid:
    order_id: str
    amount_cents: int
    method: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderShipped:
    order_id: str
    carrier: str
    tracking_number: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderDelivered:
    order_id: str
    signed_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancelled:
    order_id: str
    reason: str
    previous_status: OrderStatus


Event = (
    OrderCreated
    | LineItemAdded
    | LineItemRemoved
    | OrderPlaced
    | OrderConfirmed
    | OrderRejected
    | OrderPaid
    | OrderShipped
    | OrderDelivered
    | OrderCancelled
)


# ---------------------------------------------------------------- state


@dataclass(frozen=True, slots=True, kw_only=True)
class Line:
    product_id: str
    sku: str
    name: str
    quantity: int
    unit_price_cents: int

    @property
    def total_cents(self) -> int:
        return self.quantity * self.unit_price_cents


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    exists: bool = False
    order_id: str = ""
    customer_id: str = ""
    status: OrderStatus = DRAFT
    lines: tuple[Line, ...] = ()
    shipping_address: Address | None = None
    paid_cents: int = 0
    carrier: str | None = None
    tracking_number: str | None = None
    signed_by: str | None = None
    rejection_reason: str | None = None
    cancellation_reason: str | None = None
    customer_subject: str | None = None

    @property
    def total_cents(self) -> int:
        return sum(line.total_cents for line in self.lines)

    def line(self, product_id: str) -> Line | None:
        return next((line for line in self.lines if line.product_id == product_id), None)


INITIAL_STATE = Order()


def _text(value: str, what: str, *, optional: bool = False) -> str:
    value = value.strip()
    if (not value and not optional) or len(value) > MAX_TEXT:
        raise ValidationFailed(f"{what} must be 1 to {MAX_TEXT} characters")
    return value


def _address(address: Address) -> Address:
    line2 = None if address.line2 is None else _text(address.line2, "line2", optional=True)
    return Address(
        line1=_text(address.line1, "line1"),
        line2=line2 or None,
        city=_text(address.city, "city"),
        postal_code=_text(address.postal_code, "postal code"),
        country=_text(address.country, "country"),
    )


def _require(state: Order, *statuses: OrderStatus, to: str) -> None:
    if state.status not in statuses:
        raise RuleViolated(f"cannot {to} an order that is {state.status}")


def _create(command: CreateOrder, state: Order) -> Sequence[Event]:
    if state.exists:
        raise RuleViolated(f"order {quoted(command.order_id)} already exists")
    if not command.customer_exists:
        raise NotFound(f"customer {quoted(command.customer_id)} does not exist")
    return [
        OrderCreated(
            order_id=command.order_id,
            customer_id=command.customer_id,
            shipping_address=_address(command.shipping_address),
            customer_subject=command.customer_subject,
        )
    ]


def _add_line(command: AddLineItem, state: Order) -> Sequence[Event]:
    _require(state, DRAFT, to="add items to")
    if not 1 <= command.quantity <= MAX_QUANTITY:
        raise ValidationFailed(f"quantity must be 1 to {MAX_QUANTITY}")
    if command.product is None:
        raise NotFound(f"product {quoted(command.product_id)} does not exist")
    existing = state.line(command.product_id)
    if existing is None and len(state.lines) >= MAX_LINES:
        raise RuleViolated(f"an order has at most {MAX_LINES} lines")
    if existing is not None and existing.quantity + command.quantity > MAX_QUANTITY:
        raise RuleViolated(f"a line holds at most {MAX_QUANTITY} units")
    entry = command.product
    unit_price_cents = existing.unit_price_cents if existing else entry.unit_price_cents
    total_cents = state.total_cents + command.quantity * unit_price_cents
    if total_cents > MAX_ORDER_TOTAL_CENTS:
        raise ValidationFailed(_over_the_limit(total_cents))
    return [
        LineItemAdded(
            order_id=state.order_id,
            product_id=command.product_id,
            sku=existing.sku if existing else entry.sku,
            name=existing.name if existing else entry.name,
            quantity=command.quantity,
            unit_price_cents=unit_price_cents,
        )
    ]


def _over_the_limit(total_cents: int) -> str:
    return (
        f"an order's total is at most {MAX_ORDER_TOTAL_CENTS} cents; "
        f"this order's would be {total_cents} cents"
    )


def decide(command: Command, state: Order) -> Sequence[Event]:
    if isinstance(command, CreateOrder):
        return _create(command, state)
    if not state.exists:
        raise NotFound(f"order {quoted(command.order_id)} does not exist")
    match command:
        case AddLineItem():
            return _add_line(command, state)
        case RemoveLineItem():
            _require(state, DRAFT, to="remove items from")
            if state.line(command.product_id) is None:
                raise RuleViolated(f"product {quoted(command.product_id)} is not in the order")
            return [LineItemRemoved(order_id=state.order_id, product_id=command.product_id)]
        case PlaceOrder():
            _require(state, DRAFT, to="place")
            if not state.lines:
                raise RuleViolated("an order needs at least one item to be placed")
            if state.total_cents > MAX_ORDER_TOTAL_CENTS:
                # Only a draft filled before the limit existed can be over it.
                raise ValidationFailed(_over_the_limit(state.total_cents))
            lines = tuple(
                OrderedLine(product_id=line.product_id, quantity=line.quantity)
                for line in state.lines
            )
            return [
                OrderPlaced(order_id=state.order_id, lines=lines, total_cents=state.total_cents)
            ]
        case ConfirmOrder():
            _require(state, PLACED, to="confirm")
            return [OrderConfirmed(order_id=state.order_id)]
        case RejectOrder():
            _require(state, PLACED, to="reject")
            return [OrderRejected(order_id=state.order_id, reason=_text(command.reason, "reason"))]
        case PayOrder():
            _require(state, CONFIRMED, to="pay")
            method = _text(command.method, "payment method")
            if command.amount_cents != state.total_cents:
                raise RuleViolated(
                    f"the amount must be the order's total, {state.total_cents} cents"
                )
            return [
                OrderPaid(order_id=state.order_id, amount_cents=command.amount_cents, method=method)
            ]
        case ShipOrder():
            _require(state, PAID, to="ship")
            return [
                OrderShipped(
                    order_id=state.order_id,
                    carrier=_text(command.carrier, "carrier"),
                    tracking_number=_text(command.tracking_number, "tracking number"),
                )
            ]
        case DeliverOrder():
            _require(state, SHIPPED, to="deliver")
            signed_by = _text(command.signed_by, "signed by")
            return [OrderDelivered(order_id=state.order_id, signed_by=signed_by)]
        case CancelOrder():
            reason = _text(command.reason, "reason")
            _require(state, *sorted(CANCELLABLE), to="cancel")
            return [
                OrderCancelled(order_id=state.order_id, reason=reason, previous_status=state.status)
            ]
        case CreateOrder():
            raise AssertionError("handled above")
        case _:
            assert_never(command)


def _with_line(state: Order, event: LineItemAdded) -> tuple[Line, ...]:
    existing = state.line(event.product_id)
    if existing is None:
        line = Line(
            product_id=event.product_id,
            sku=event.sku,
            name=event.name,
            quantity=event.quantity,
            unit_price_cents=event.unit_price_cents,
        )
        return (*state.lines, line)
    grown = replace(existing, quantity=existing.quantity + event.quantity)
    return tuple(grown if line.product_id == event.product_id else line for line in state.lines)


def evolve(state: Order, event: Event) -> Order:
    match event:
        case OrderCreated():
            return Order(
                exists=True,
                order_id=event.order_id,
                customer_id=event.customer_id,
                shipping_address=event.shipping_address,
                customer_subject=event.customer_subject,
            )
        case LineItemAdded():
            return replace(state, lines=_with_line(state, event))
        case LineItemRemoved():
            lines = tuple(line for line in state.lines if line.product_id != event.product_id)
            return replace(state, lines=lines)
        case OrderPlaced():
            return replace(state, status=PLACED)
        case OrderConfirmed():
            return replace(state, status=CONFIRMED)
        case OrderRejected():
            return replace(state, status=REJECTED, rejection_reason=event.reason)
        case OrderPaid():
            return replace(state, status=PAID, paid_cents=event.amount_cents)
        case OrderShipped():
            return replace(
                state, status=SHIPPED, carrier=event.carrier, tracking_number=event.tracking_number
            )
        case OrderDelivered():
            return replace(state, status=DELIVERED, signed_by=event.signed_by)
        case OrderCancelled():
            return replace(state, status=CANCELLED, cancellation_reason=event.reason)
        case _:
            assert_never(event)


def authorize(command: Command, state: Order, actor: Actor) -> None:
    """Customers order as themselves and manage their own orders (another's order is NOT_FOUND
    to them, not a hint that it exists); admins ship and deliver; only the fulfilment process
    confirms and rejects."""
    match command:
        case CreateOrder():
            acting_as(actor, command.customer_subject, "order only as yourself")
        case ShipOrder() | DeliverOrder():
            require_admin(actor, "ship or deliver orders")
        case ConfirmOrder() | RejectOrder():
            require_system(actor, "confirm or reject orders (the fulfilment process does)")
        case AddLineItem() | RemoveLineItem() | PlaceOrder() | PayOrder() | CancelOrder():
            signed_in(command, state, actor)
            if not actor.is_admin and (
                state.customer_subject is None or state.customer_subject != actor.subject
            ):
                raise NotFound(f"no Order has the id {quoted(command.order_id)}")
        case _:
            assert_never(command)


DECIDER: Decider[Command, Order, Event] = Decider(
    stream_type=STREAM_TYPE,
    state_type=Order,
    initial_state=INITIAL_STATE,
    event_types=(
        OrderCreated,
        LineItemAdded,
        LineItemRemoved,
        OrderPlaced,
        OrderConfirmed,
        OrderRejected,
        OrderPaid,
        OrderShipped,
        OrderDelivered,
        OrderCancelled,
    ),
    decide=decide,
    evolve=evolve,
    authorize=authorize,
    owners={OrderCreated: "customer_subject"},
)
