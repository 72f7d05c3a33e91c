"""The order fulfilment process manager: `domain/fulfilment.py`'s decisions, run on the feed.

The projection runner hands it batches of the feed like a projector, under the same leader
election and with a checkpoint of its own. For each batch it loads the state of the orders the
batch is about, lets the domain decide, sends the commands through the command handler (the
API's own), and gives back how to record the new states, which the runner writes in the
transaction that moves the checkpoint.

Commands go out before that transaction, not inside it, so the transaction stays short (an
open writing transaction holds back every reader of the gap-safe feed). If the process dies in
between, the batch is decided again from the same recorded states, and the same commands go out
with the same command ids: the handler, which has processed them, writes nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain import catalog, fulfilment, orders
from domain.errors import DomainError
from projections.live import EventFilter, LiveFeed
from projections.projector import Envelope, Record, type_names
from projections.runner import ProjectionRunner, StaleRead
from store.command_handler import CommandContext, CommandHandler
from store.event_store import EventStore
from store.serialization import decode_state, encode_state
from store.tracing import reaction_span

log = logging.getLogger(__name__)

STOCK_COMMANDS = (catalog.ReserveStock, catalog.ReleaseStock, catalog.ShipReservedStock)

DECISIONS = frozenset({"OrderConfirmed", "OrderRejected", "OrderCancelled"})
"""The events that end an order's wait in PLACED."""


class FulfilmentProcess:
    """A `ProcessManager`: reserves placed orders' stock, confirms or rejects them, releases
    what cancelled orders hold and ships what shipped orders hold."""

    name = "fulfilment"
    handles = fulfilment.TRIGGERS
    event_types = type_names(fulfilment.TRIGGERS)

    def __init__(self, engine: AsyncEngine, handler: CommandHandler) -> None:
        self.engine = engine
        self.handler = handler

    async def react(self, events: Sequence[Envelope[fulfilment.Trigger]]) -> Record:
        states = await self._load({envelope.event.order_id for envelope in events})
        changed: dict[str, fulfilment.Fulfilment] = {}
        for recorded in events:
            trigger = recorded.event
            before = states.get(trigger.order_id, fulfilment.INITIAL_STATE)
            after, issues = fulfilment.react(before, trigger, str(recorded.event_id))
            if issues:
                # Inside the trace of the command that wrote the event: one trace runs from
                # placeOrder through each reservation to the confirmation.
                with reaction_span(
                    f"fulfilment {type(trigger).__name__}",
                    type(trigger).__name__,
                    recorded.position,
                    recorded.metadata,
                ):
                    for issue in issues:
                        await self._send(issue, recorded)
            if after != before:
                states[trigger.order_id] = changed[trigger.order_id] = after

        async def record(connection: AsyncConnection) -> None:
            if changed:
                await connection.execute(
                    text(
                        "INSERT INTO fulfilment_state (order_id, state) "
                        "VALUES (:order_id, CAST(:state AS jsonb)) ON CONFLICT (order_id) "
                        "DO UPDATE SET state = excluded.state, updated_at = now()"
                    ),
                    [
                        {"order_id": order_id, "state": json.dumps(encode_state(state))}
                        for order_id, state in changed.items()
                    ],
                )

        return record

    async def _load(self, order_ids: set[str]) -> dict[str, fulfilment.Fulfilment]:
        if not order_ids:
            return {}
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT order_id, state::text AS state_json FROM fulfilment_state "
                    "WHERE order_id IN :ids"
                ).bindparams(bindparam("ids", expanding=True)),
                {"ids": sorted(order_ids)},
            )
            return {
                row.order_id: decode_state(json.loads(row.state_json), fulfilment.Fulfilment)
                for row in rows
            }

    async def _send(self, issue: fulfilment.Issue, cause: Envelope[fulfilment.Trigger]) -> None:
        command = issue.command
        context = CommandContext(
            command_id=issue.command_id,
            correlation_id=cause.metadata.get("correlationId"),
            causation_id=str(cause.event_id),
            actor="fulfilment",
            roles=("system",),
        )
        try:
            if isinstance(command, STOCK_COMMANDS):
                await self.handler.handle(
                    catalog.DECIDER, command.product_id, command, context=context
                )
            else:
                await self.handler.handle(
                    orders.DECIDER, command.order_id, command, context=context
                )
        except DomainError as refusal:
            # The order moved on meanwhile (a customer cancelled it before it was confirmed):
            # the event that moved it brings the process along.
            log.info("fulfilment: %s refused: %s", type(command).__name__, refusal)


async def decision(
    live: LiveFeed,
    runner: ProjectionRunner,
    store: EventStore,
    order_id: str,
    placed_at: int,
    within: float,
) -> int:
    """The position of the event that confirmed, rejected or cancelled the order placed at
    position `placed_at`, once the orders read model has applied it.

    Follows the live feed from `placed_at`, so nothing is polled. Raises `StaleRead` when that
    takes more than `within` seconds (no runner is up, say).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    after = await store.checkpoint_at(placed_at)
    decided = EventFilter(stream_id=order_id, types=DECISIONS)
    try:
        async with asyncio.timeout(within):
            events = live.subscribe(decided, after=after)
            async with contextlib.aclosing(events):
                event = await anext(events)
    except TimeoutError as error:
        raise StaleRead(f"order {order_id} was not confirmed or rejected in {within:g}s") from error
    await runner.wait_for("orders", event.position, max(0.0, deadline - loop.time()))
    return event.position
