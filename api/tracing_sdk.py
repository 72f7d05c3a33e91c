"""The OpenTelemetry SDK's side of tracing (the `chronicle[otel]` extra): the provider, its
sampler and the engine's instrumentation. Imported only when tracing is on (api/tracing.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

SERVICE_NAME = "chronicle"
"""`service.name` unless `OTEL_SERVICE_NAME` (or `OTEL_RESOURCE_ATTRIBUTES`) names another."""


def install_provider() -> None:
    """Make the provider exporting over OTLP/HTTP the process's global one, unless one is
    installed already (by an earlier start in this process, or by a test)."""
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return
    trace.set_tracer_provider(tracer_provider([BatchSpanProcessor(OTLPSpanExporter())]))
    log.info("tracing: exporting spans over OTLP/HTTP")


def tracer_provider(processors: Sequence[SpanProcessor]) -> TracerProvider:
    """The SDK's provider as the service sets it up: its resource named `chronicle` unless the
    environment names it, the sampler `OTEL_TRACES_SAMPLER` chooses (by default parent-based,
    always on) but never starting a trace at a database statement, and `processors`."""
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    provider.sampler = StatementsInTracesOnly(provider.sampler)
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


class StatementsInTracesOnly(Sampler):
    """`delegate`'s decisions, except that a client span without a parent is dropped: the
    projection runner and the live feed poll the database every second or so, and each poll
    would otherwise be a trace of its own holding one statement. Statements of traced work
    (a request, a command, a process manager's reaction) are kept."""

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if kind is SpanKind.CLIENT and not parent.is_valid:
            return SamplingResult(Decision.DROP)
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"StatementsInTracesOnly{{{self.delegate.get_description()}}}"


def instrument_engine(engine: AsyncEngine) -> Callable[[], None]:
    """A span for each statement the engine runs (through the sync engine the async one
    drives) and for each connection it takes; gives back what undoes it. The append's one
    statement runs on the raw asyncpg connection: its span is the store's `append`."""
    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        log.warning("tracing: SQLAlchemy is instrumented already; this engine is not")
        return lambda: None
    # It declares SQLAlchemy < 2.1; on 2.1 it works (tests/integration/test_tracing.py).
    instrumentor.instrument(engine=engine.sync_engine, skip_dep_check=True)

    def uninstrument() -> None:
        instrumentor.uninstrument()

    return uninstrument
