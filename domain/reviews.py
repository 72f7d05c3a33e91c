"""The Review aggregate: one user's rating (1 to 5) and words on one product.

A user reviews a product once. The review's stream is named after the pair (`review_id`), so
the rule holds in the store itself: a second review of the same pair finds the first one's
stream and is refused as DUPLICATE, however many processes send it at once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

from domain.access import Actor, acting_as
from domain.decider import Decider
from domain.errors import Duplicate, NotFound, ValidationFailed
from domain.text import quoted

STREAM_TYPE = "Review"
MIN_RATING = 1
MAX_RATING = 5
MAX_TEXT = 2_000

_REVIEW_IDS = uuid.UUID("a3d9f1c2-5b7e-4e0a-8c6d-2f4b9e1a7c35")


def review_id(product_id: str, user_id: str) -> str:
    """The id of `user_id`'s review of `product_id`: the same pair always gives the same id,
    and two different pairs never do (the pair is encoded unambiguously before hashing)."""
    return str(uuid.uuid5(_REVIEW_IDS, json.dumps([product_id, user_id])))


# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewProduct:
    review_id: str
    product_id: str
    product_exists: bool
    user_id: str
    user_exists: bool
    rating: int
    text: str
    user_subject: str | None = None
    """The token subject the reviewing user is bound to (looked up by the API)."""


Command = ReviewProduct


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductReviewed:
    review_id: str
    product_id: str
    user_id: str
    rating: int
    text: str
    user_subject: str | None = None
    """The token subject of the reviewing user: the review's owner."""


Event = ProductReviewed


# ---------------------------------------------------------------- state


@dataclass(frozen=True, slots=True, kw_only=True)
class Review:
    exists: bool = False
    product_id: str = ""
    user_id: str = ""
    rating: int = 0
    text: str = ""


INITIAL_STATE = Review()


def decide(command: Command, state: Review) -> Sequence[Event]:
    match command:
        case ReviewProduct():
            if not MIN_RATING <= command.rating <= MAX_RATING:
                raise ValidationFailed(
                    f"rating must be {MIN_RATING} to {MAX_RATING}, got {command.rating}"
                )
            text = command.text.strip()
            if not 1 <= len(text) <= MAX_TEXT:
                raise ValidationFailed(f"text must be 1 to {MAX_TEXT} characters")
            if not command.product_exists:
                raise NotFound(f"product {quoted(command.product_id)} does not exist")
            if not command.user_exists:
                raise NotFound(f"user {quoted(command.user_id)} does not exist")
            if command.review_id != review_id(command.product_id, command.user_id):
                # A caller's fault, not the client's: masked and logged as INTERNAL.
                raise ValueError(f"review {command.review_id} is not the id of its pair")
            if state.exists:
                raise Duplicate(
                    f"user {quoted(command.user_id)} has already reviewed product "
                    f"{quoted(command.product_id)}"
                )
            return [
                ProductReviewed(
                    review_id=command.review_id,
                    product_id=command.product_id,
                    user_id=command.user_id,
                    rating=command.rating,
                    text=text,
                    user_subject=command.user_subject,
                )
            ]
        case _:
            assert_never(command)


def evolve(state: Review, event: Event) -> Review:
    match event:
        case ProductReviewed():
            return Review(
                exists=True,
                product_id=event.product_id,
                user_id=event.user_id,
                rating=event.rating,
                text=event.text,
            )
        case _:
            assert_never(event)


def authorize(command: Command, state: Review, actor: Actor) -> None:
    """Users review as themselves; admins as anyone."""
    acting_as(actor, command.user_subject, "review only as yourself")


DECIDER: Decider[Command, Review, Event] = Decider(
    stream_type=STREAM_TYPE,
    state_type=Review,
    initial_state=INITIAL_STATE,
    event_types=(ProductReviewed,),
    decide=decide,
    evolve=evolve,
    authorize=authorize,
    owners={ProductReviewed: "user_subject"},
)
