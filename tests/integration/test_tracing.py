"""Traces: one trace from placeOrder through the fulfilment process's reservations to the
confirmation, carried from command to command by the events' metadata; nothing when off."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once
from starlette.requests import Request
from strawberry.types import ExecutionResult

from api.app import services
from api.auth import OPEN_MODE
from api.context import Context, Services
from api.loaders import Loaders
from api.schema import build_schema
from api.settings import Settings
from api.tracing import GraphQLTracing
from api.tracing_sdk import tracer_provider
from domain import catalog, orders
from domain.errors import RuleViolated
from store.events import RecordedEvent
from tests.visibility import until_all_visible

PLACE_ORDER = """mutation Place($id: ID!) { placeOrder(input: {orderId: $id}) { position } }"""
ADDRESS = orders.Address(line1="1 Main St", city="Springfield", postal_code="1", country="US")


def _install(provider: TracerProvider | None) -> None:
    # The API sets a process's provider once; a test installs its own and takes it back, as
    # OpenTelemetry's own test utilities do.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = provider


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The global provider, as the service sets it up, exporting to memory for the test."""
    exporter = InMemorySpanExporter()
    provider = tracer_provider([SimpleSpanProcessor(exporter)])
    _install(provider)
    try:
        yield exporter
    finally:
        _install(None)
        provider.shutdown()


async def _services(database_url: str, *, tracing: bool) -> AsyncIterator[Services]:
    # No runner in the background: the test runs the fulfilment process itself, batch by batch.
    settings = Settings(
        database_url=database_url, run_projections=False, safety_poll=3600, tracing=tracing
    )
    async with services(settings) as built:
        yield built


@pytest.fixture
async def traced(database_url: str, spans: InMemorySpanExporter) -> AsyncIterator[Services]:
    async for built in _services(database_url, tracing=True):
        yield built


@pytest.fixture
async def untraced(database_url: str) -> AsyncIterator[Services]:
    async for built in _services(database_url, tracing=False):
        yield built


async def _order_of_two_lines(built: Services) -> str:
    """A draft order of two products in stock."""
    order_id = str(uuid.uuid4())
    await built.handler.handle(
        orders.DECIDER,
        order_id,
        orders.CreateOrder(
            order_id=order_id,
            customer_id="customer",
            customer_exists=True,
            shipping_address=ADDRESS,
        ),
    )
    for n in (1, 2):
        product_id = str(uuid.uuid4())
        await built.handler.handle(
            catalog.DECIDER,
            product_id,
            catalog.AddProduct(
                product_id=product_id,
                sku=f"SKU-{product_id}",
                name="Lamp",
                price_cents=100,
                initial_stock=10,
            ),
        )
        entry = orders.CatalogEntry(sku=f"SKU-{product_id}", name="Lamp", unit_price_cents=100)
        await built.handler.handle(
            orders.DECIDER,
            order_id,
            orders.AddLineItem(order_id=order_id, product_id=product_id, quantity=n, product=entry),
        )
    return order_id


async def _place(built: Services, order_id: str) -> None:
    """placeOrder through the schema, then the fulfilment process until it has decided."""
    context = Context(
        services=built,
        loaders=Loaders.for_request(built.engine),
        request=Request({"type": "http", "headers": [], "method": "POST"}),
        identity=OPEN_MODE,
    )
    result = await build_schema(built.settings).execute(
        PLACE_ORDER, variable_values={"id": order_id}, context_value=context
    )
    assert result.errors is None, result.errors
    for _ in range(20):
        await until_all_visible(built.store)
        if not await built.runner.run_once():
            break
    state = (await built.handler.load(orders.DECIDER, order_id)).state
    assert state.status == orders.CONFIRMED


async def _events(built: Services, order_id: str) -> list[RecordedEvent]:
    """Every event of the order and of its products."""
    events = list(await built.store.read_stream(order_id))
    lines = (await built.handler.load(orders.DECIDER, order_id)).state.lines
    for line in lines:
        events += await built.store.read_stream(line.product_id)
    return events


def _one(finished: list[ReadableSpan], name: str) -> ReadableSpan:
    [span] = [s for s in finished if s.name == name]
    return span


def _traceparent(span: ReadableSpan) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


async def test_a_placed_order_is_one_trace_from_the_mutation_through_each_reservation_to_the_confirmation(
    traced: Services, spans: InMemorySpanExporter
) -> None:
    order_id = await _order_of_two_lines(traced)
    spans.clear()

    await _place(traced, order_id)

    finished = list(spans.get_finished_spans())
    operation = _one(finished, "GraphQL Query: Place")
    resolving = _one(finished, "GraphQL Resolving: placeOrder")
    place = _one(finished, "command PlaceOrder")
    placed = _one(finished, "fulfilment OrderPlaced")
    first, second = sorted(
        (s for s in finished if s.name == "command ReserveStock"), key=lambda s: s.start_time or 0
    )
    reserved_first, reserved_second = sorted(
        (s for s in finished if s.name == "fulfilment StockReserved"),
        key=lambda s: s.start_time or 0,
    )
    confirm = _one(finished, "command ConfirmOrder")
    chain = [
        operation,
        resolving,
        place,
        placed,
        first,
        reserved_first,
        second,
        reserved_second,
        confirm,
    ]
    assert operation.parent is None
    assert operation.kind is SpanKind.SERVER
    for parent, child in zip(chain, chain[1:], strict=False):
        assert child.parent is not None, child.name
        assert child.parent.span_id == parent.get_span_context().span_id, child.name
    assert {s.get_span_context().trace_id for s in chain} == {operation.get_span_context().trace_id}

    assert place.attributes is not None
    assert place.attributes["chronicle.stream.type"] == "Order"
    assert place.attributes["chronicle.stream.id"] == order_id
    assert place.attributes["chronicle.command.outcome"] == "ok"
    assert first.attributes is not None and first.attributes["chronicle.stream.type"] == "Product"
    assert confirm.attributes is not None
    assert confirm.attributes["chronicle.command.outcome"] == "ok"
    assert placed.kind is SpanKind.CONSUMER
    assert placed.resource.attributes["service.name"] == "chronicle"

    # Each command's append, and the statements it ran, are its children.
    for command in (place, first, second, confirm):
        appends = [
            s
            for s in finished
            if s.name == "append" and s.parent and s.parent.span_id == command.context.span_id
        ]
        assert len(appends) == 1, command.name
        statements = [
            s
            for s in finished
            if s.kind is SpanKind.CLIENT
            and s.parent
            and s.parent.span_id == command.context.span_id
            and s.attributes
            and s.attributes.get("db.system") == "postgresql"
        ]
        assert statements, command.name
    # The runner's own reads belong to no trace: no statement starts one.
    assert all(s.parent is not None for s in finished if s.kind is SpanKind.CLIENT)

    # Each event carries the trace context of the command that wrote it.
    written_by = {
        "OrderPlaced": [place],
        "StockReserved": [first, second],
        "OrderConfirmed": [confirm],
    }
    for event in await _events(traced, order_id):
        if event.event_type in written_by:
            assert event.metadata["traceparent"] in {
                _traceparent(s) for s in written_by[event.event_type]
            }, event.event_type
        else:  # written before placeOrder, each command the root of a trace of its own
            trace_id = event.metadata["traceparent"].split("-")[1]
            assert trace_id != f"{operation.context.trace_id:032x}", event.event_type


async def test_a_refused_command_is_an_answer_on_its_span_not_an_error(
    traced: Services, spans: InMemorySpanExporter
) -> None:
    order_id = str(uuid.uuid4())
    await traced.handler.handle(
        orders.DECIDER,
        order_id,
        orders.CreateOrder(
            order_id=order_id,
            customer_id="customer",
            customer_exists=True,
            shipping_address=ADDRESS,
        ),
    )
    with pytest.raises(RuleViolated):
        await traced.handler.handle(orders.DECIDER, order_id, orders.PlaceOrder(order_id=order_id))

    place = _one(list(spans.get_finished_spans()), "command PlaceOrder")
    assert place.attributes is not None
    assert place.attributes["chronicle.command.outcome"] == "rule_violated"
    assert place.status.status_code is StatusCode.UNSET


async def test_with_tracing_off_nothing_is_traced_and_no_event_carries_a_trace_context(
    untraced: Services,
) -> None:
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    schema = build_schema(untraced.settings)
    extensions: list[Any] = list(schema.extensions)
    assert GraphQLTracing not in extensions
    assert not SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry

    order_id = await _order_of_two_lines(untraced)
    await _place(untraced, order_id)

    events = await _events(untraced, order_id)
    assert {e.event_type for e in events} >= {"OrderPlaced", "StockReserved", "OrderConfirmed"}
    assert not [e for e in events if "traceparent" in e.metadata or "tracestate" in e.metadata]


async def test_a_subscription_streams_with_tracing_on_and_its_events_start_no_spans(
    traced: Services, spans: InMemorySpanExporter
) -> None:
    schema = build_schema(traced.settings)
    assert GraphQLTracing in list(schema.extensions)
    context = Context(
        services=traced,
        loaders=Loaders.for_request(traced.engine),
        request=Request({"type": "http", "headers": [], "method": "POST"}),
        identity=OPEN_MODE,
    )
    subscription = await schema.subscribe(
        'subscription Tail { events(streamType: "Product") { type streamId metadata } }',
        context_value=context,
    )
    assert not isinstance(subscription, ExecutionResult) or subscription.errors is None
    results = aclosing(subscription)  # type: ignore[type-var]
    async with results as stream:
        product_id = str(uuid.uuid4())
        await traced.handler.handle(
            catalog.DECIDER,
            product_id,
            catalog.AddProduct(product_id=product_id, sku="SUB-1", name="Lamp", price_cents=1),
        )
        result = await anext(stream)
    assert result.errors is None, result.errors
    assert result.data is not None
    event = result.data["events"]
    assert (event["type"], event["streamId"]) == ("ProductAdded", product_id)
    add = _one(list(spans.get_finished_spans()), "command AddProduct")
    assert event["metadata"]["traceparent"] == _traceparent(add)
    names = [s.name for s in spans.get_finished_spans()]
    assert not [n for n in names if n.startswith("GraphQL Resolving")]


async def test_a_request_carrying_a_traceparent_continues_the_clients_trace(
    traced: Services, spans: InMemorySpanExporter
) -> None:
    client_trace, client_span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    headers = [(b"traceparent", f"00-{client_trace}-{client_span}-01".encode())]
    context = Context(
        services=traced,
        loaders=Loaders.for_request(traced.engine),
        request=Request({"type": "http", "headers": headers, "method": "POST"}),
        identity=OPEN_MODE,
    )
    result = await build_schema(traced.settings).execute(
        "query Products { products(first: 1) { edges { node { id } } } }", context_value=context
    )
    assert result.errors is None, result.errors

    finished = list(spans.get_finished_spans())
    operation = _one(finished, "GraphQL Query: Products")
    assert operation.parent is not None and operation.parent.is_remote
    assert f"{operation.parent.span_id:016x}" == client_span
    assert f"{operation.context.trace_id:032x}" == client_trace
    resolving = _one(finished, "GraphQL Resolving: products")
    assert resolving.context.trace_id == operation.context.trace_id
    assert trace.get_current_span() is trace.INVALID_SPAN  # the client's context was let go
