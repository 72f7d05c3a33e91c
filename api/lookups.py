"""Facts about other aggregates that a command needs, read from their streams in the store.

Reading the write side (not a read model) means these checks hold before any projection has
caught up.
"""

from __future__ import annotations

from api.context import Info
from domain import catalog, users
from domain.decider import CLAIMS, Claim
from domain.orders import CatalogEntry


async def user_state(info: Info, user_id: str) -> users.User:
    """The user `user_id` as the write side holds it: whether it exists, and the token subject
    it is bound to (who may act as it)."""
    return (await info.context.services.handler.load(users.DECIDER, user_id)).state


async def catalog_entry(info: Info, product_id: str) -> CatalogEntry | None:
    product = (await info.context.services.handler.load(catalog.DECIDER, product_id)).state
    if not product.exists:
        return None
    return CatalogEntry(sku=product.sku, name=product.name, unit_price_cents=product.price_cents)


async def user_of_subject(info: Info, subject: str) -> str | None:
    """The id of the user bound to the token subject `subject`, if one is."""
    claim = Claim(scope=users.SUBJECT_SCOPE, key=subject, owner_id="")
    held = (await info.context.services.handler.load(CLAIMS, claim.stream_id)).state
    return held.owner_id or None
