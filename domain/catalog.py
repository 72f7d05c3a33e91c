"""The Product aggregate: catalog entry and inventory, with stock reserved per order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import assert_never

from domain.access import Actor, require_admin, require_system
from domain.decider import Claim, Decider
from domain.errors import NotFound, RuleViolated, ValidationFailed
from domain.text import quoted

STREAM_TYPE = "Product"
SKU_SCOPE = "product-sku"
MAX_SKU_LENGTH = 64
MAX_NAME_LENGTH = 200
MAX_PRICE_CENTS = 100_000_000
MAX_STOCK = 1_000_000_000


# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True, kw_only=True)
class AddProduct:
    product_id: str
    sku: str
    name: str
    price_cents: int
    initial_stock: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RestockProduct:
    product_id: str
    quantity: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeProductPrice:
    product_id: str
    price_cents: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReserveStock:
    product_id: str
    order_id: str
    quantity: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseStock:
    product_id: str
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipReservedStock:
    product_id: str
    order_id: str


Command = (
    AddProduct
    | RestockProduct
    | ChangeProductPrice
    | ReserveStock
    | ReleaseStock
    | ShipReservedStock
)


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductAdded:
    product_id: str
    sku: str
    name: str
    price_cents: int
    initial_stock: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductRestocked:
    product_id: str
    quantity: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductPriceChanged:
    product_id: str
    price_cents: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StockReserved:
    product_id: str
    order_id: str
    quantity: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StockReservationDeclined:
    """Not enough stock was available for the order: recorded, so the fulfilment process
    learns it from the log and a retry of the same command gets the same answer."""

    product_id: str
    order_id: str
    quantity: int
    available: int
    sku: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StockReleased:
    product_id: str
    order_id: str
    quantity: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservedStockShipped:
    """The order's reservation left the warehouse: on hand and reserved both drop."""

    product_id: str
    order_id: str
    quantity: int


Event = (
    ProductAdded
    | ProductRestocked
    | ProductPriceChanged
    | StockReserved
    | StockReservationDeclined
    | StockReleased
    | ReservedStockShipped
)


# ---------------------------------------------------------------- state


@dataclass(frozen=True, slots=True, kw_only=True)
class Reservation:
    order_id: str
    quantity: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Product:
    exists: bool = False
    product_id: str = ""
    sku: str = ""
    name: str = ""
    price_cents: int = 0
    on_hand: int = 0
    reservations: tuple[Reservation, ...] = ()

    @property
    def reserved(self) -> int:
        return sum(r.quantity for r in self.reservations)

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def reservation_of(self, order_id: str) -> Reservation | None:
        return next((r for r in self.reservations if r.order_id == order_id), None)


INITIAL_STATE = Product()


def _valid_price(price_cents: int) -> int:
    if not 0 <= price_cents <= MAX_PRICE_CENTS:
        raise ValidationFailed(f"price must be 0 to {MAX_PRICE_CENTS} cents, got {price_cents}")
    return price_cents


def _positive(quantity: int, what: str) -> int:
    if not 0 < quantity <= MAX_STOCK:
        raise ValidationFailed(f"{what} must be a whole number from 1 to {MAX_STOCK}")
    return quantity


def _add(command: AddProduct, state: Product) -> Sequence[Event]:
    if state.exists:
        raise RuleViolated(f"product {quoted(command.product_id)} already exists")
    sku, name = command.sku.strip(), command.name.strip()
    if not 1 <= len(sku) <= MAX_SKU_LENGTH:
        raise ValidationFailed(f"SKU must be 1 to {MAX_SKU_LENGTH} characters")
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise ValidationFailed(f"name must be 1 to {MAX_NAME_LENGTH} characters")
    if not 0 <= command.initial_stock <= MAX_STOCK:
        raise ValidationFailed(f"initial stock must be 0 to {MAX_STOCK}")
    return [
        ProductAdded(
            product_id=command.product_id,
            sku=sku,
            name=name,
            price_cents=_valid_price(command.price_cents),
            initial_stock=command.initial_stock,
        )
    ]


def decide(command: Command, state: Product) -> Sequence[Event]:
    if isinstance(command, AddProduct):
        return _add(command, state)
    if not state.exists:
        raise NotFound(f"product {quoted(command.product_id)} does not exist")
    match command:
        case RestockProduct():
            quantity = _positive(command.quantity, "restock quantity")
            if state.on_hand + quantity > MAX_STOCK:
                raise RuleViolated(f"stock on hand cannot exceed {MAX_STOCK}")
            return [ProductRestocked(product_id=state.product_id, quantity=quantity)]
        case ChangeProductPrice():
            price = _valid_price(command.price_cents)
            if price == state.price_cents:
                return []
            return [ProductPriceChanged(product_id=state.product_id, price_cents=price)]
        case ReserveStock():
            quantity = _positive(command.quantity, "reserved quantity")
            held = state.reservation_of(command.order_id)
            if held is not None:
                # Idempotent: the same order asking again for what it holds changes nothing.
                if held.quantity == quantity:
                    return []
                raise RuleViolated(f"order {quoted(command.order_id)} already holds a reservation")
            if quantity > state.available:
                return [
                    StockReservationDeclined(
                        product_id=state.product_id,
                        order_id=command.order_id,
                        quantity=quantity,
                        available=state.available,
                        sku=state.sku,
                    )
                ]
            return [
                StockReserved(
                    product_id=state.product_id, order_id=command.order_id, quantity=quantity
                )
            ]
        case ReleaseStock():
            held = state.reservation_of(command.order_id)
            if held is None:
                return []  # nothing held: nothing to give back
            return [
                StockReleased(
                    product_id=state.product_id, order_id=held.order_id, quantity=held.quantity
                )
            ]
        case ShipReservedStock():
            held = state.reservation_of(command.order_id)
            if held is None:
                raise RuleViolated(
                    f"order {quoted(command.order_id)} holds no reservation of {state.sku}"
                )
            return [
                ReservedStockShipped(
                    product_id=state.product_id, order_id=held.order_id, quantity=held.quantity
                )
            ]
        case AddProduct():
            raise AssertionError("handled above")
        case _:
            assert_never(command)


def _without(state: Product, order_id: str) -> tuple[Reservation, ...]:
    return tuple(r for r in state.reservations if r.order_id != order_id)


def evolve(state: Product, event: Event) -> Product:
    match event:
        case ProductAdded():
            return Product(
                exists=True,
                product_id=event.product_id,
                sku=event.sku,
                name=event.name,
                price_cents=event.price_cents,
                on_hand=event.initial_stock,
            )
        case ProductRestocked():
            return replace(state, on_hand=state.on_hand + event.quantity)
        case ProductPriceChanged():
            return replace(state, price_cents=event.price_cents)
        case StockReserved():
            reservation = Reservation(order_id=event.order_id, quantity=event.quantity)
            return replace(state, reservations=(*state.reservations, reservation))
        case StockReservationDeclined():
            return state
        case StockReleased():
            return replace(state, reservations=_without(state, event.order_id))
        case ReservedStockShipped():
            return replace(
                state,
                on_hand=state.on_hand - event.quantity,
                reservations=_without(state, event.order_id),
            )
        case _:
            assert_never(event)


def normalise_sku(sku: str) -> str:
    return sku.strip().lower()


def claims(command: Command) -> Sequence[Claim]:
    if isinstance(command, AddProduct):
        sku = normalise_sku(command.sku)
        taken = f"SKU {quoted(command.sku.strip())} is already in use (in any letter case)"
        return [Claim(scope=SKU_SCOPE, key=sku, owner_id=command.product_id, taken=taken)]
    return ()


def authorize(command: Command, state: Product, actor: Actor) -> None:
    """Admins manage the catalog; stock is reserved, released and shipped by the fulfilment
    process."""
    match command:
        case AddProduct() | RestockProduct() | ChangeProductPrice():
            require_admin(actor, "manage the catalog")
        case ReserveStock() | ReleaseStock() | ShipReservedStock():
            require_system(actor, "reserve, release or ship stock (the fulfilment process does)")
        case _:
            assert_never(command)


DECIDER: Decider[Command, Product, Event] = Decider(
    stream_type=STREAM_TYPE,
    state_type=Product,
    initial_state=INITIAL_STATE,
    event_types=(
        ProductAdded,
        ProductRestocked,
        ProductPriceChanged,
        StockReserved,
        StockReservationDeclined,
        StockReleased,
        ReservedStockShipped,
    ),
    decide=decide,
    evolve=evolve,
    claims=claims,
    authorize=authorize,
)
