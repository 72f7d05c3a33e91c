"""Traces of the write side: a span for each command and its append, and the trace context
kept in each event's metadata so that whatever reacts to the event continues the same trace.

Only the OpenTelemetry API is used here. Without an SDK's provider (tracing off) no span is
started and nothing is added to metadata. The tracer is looked up at each use, never kept from
import time, so the provider installed later (by the service at start, or by a test) records.

An event's metadata carries the W3C trace context of the command span that wrote it:
`traceparent`, and `tracestate` when there is one. It is written only while that span is
recording, and always in the W3C format, whatever propagators a deployment configures: the log
is kept for good and its fields must not change with a setting. Baggage is never stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from store.events import StreamAppend

TRACER_NAME = "chronicle"
TRACE_FIELDS = ("traceparent", "tracestate")
"""The metadata keys that hold an event's trace context."""

OUTCOME = "chronicle.command.outcome"
"""`ok`, `replayed`, a refusal's code in lower case (`rule_violated`, `concurrency_conflict`),
or `error` for a fault: the words of the commands metric (store/metrics.py)."""

_W3C = TraceContextTextMapPropagator()


def tracer() -> trace.Tracer:
    """The service's tracer, from the provider installed now."""
    return trace.get_tracer(TRACER_NAME)


def _tracing() -> bool:
    """Whether a provider is installed. Without one a no-op span still costs a tracer, a
    context attached and detached: tens of microseconds a command that tracing off skips."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def record_trace_context(metadata: MutableMapping[str, object]) -> None:
    """Add the current span's trace context to an event's metadata, if that span records."""
    if trace.get_current_span().is_recording():
        carrier: dict[str, str] = {}
        _W3C.inject(carrier)
        metadata.update(carrier)


def trace_context_of(metadata: Mapping[str, object]) -> Context:
    """The trace context an event's metadata carries: empty (a span in it starts a new trace)
    when it carries none."""
    carrier = {k: v for k in TRACE_FIELDS if isinstance(v := metadata.get(k), str)}
    return _W3C.extract(carrier, context=Context())


class CommandSpan:
    """Where a command's span records how the command ended."""

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def ran(self, *, replayed: bool, events: int, position: int) -> None:
        self.span.set_attribute(OUTCOME, "replayed" if replayed else "ok")
        self.span.set_attribute("chronicle.command.events", events)
        self.span.set_attribute("chronicle.position", position)


@contextlib.contextmanager
def command_span(command_type: str, stream_type: str, stream_id: str) -> Iterator[CommandSpan]:
    """The span `command <Type>` around one command: load, decide, append, retries. A refusal
    (an error with a client code) is an answer, recorded as the outcome; any other exception
    is a fault, recorded on the span with an ERROR status."""
    if not _tracing():
        yield CommandSpan(trace.INVALID_SPAN)
        return
    with tracer().start_as_current_span(
        f"command {command_type}",
        attributes={
            "chronicle.command.type": command_type,
            "chronicle.stream.type": stream_type,
            "chronicle.stream.id": stream_id,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield CommandSpan(span)
        except Exception as error:
            _ended_by(span, error, OUTCOME)
            raise


@contextlib.contextmanager
def append_span(appends: Sequence[StreamAppend]) -> Iterator[None]:
    """The span `append` around one atomic append of a command's events (and claims)."""
    if not _tracing():
        yield
        return
    with tracer().start_as_current_span(
        "append",
        attributes={
            "chronicle.append.streams": len(appends),
            "chronicle.append.events": sum(len(a.events) for a in appends),
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        except Exception as error:
            _ended_by(span, error, "chronicle.append.outcome")
            raise


def reaction_span(
    name: str, event_type: str, position: int, metadata: Mapping[str, object]
) -> contextlib.AbstractContextManager[Span]:
    """A span, current while it lasts, for the work a recorded event calls for (a process
    manager's commands): a child of the span of the command that wrote the event, so the trace
    goes on; the root of a new trace when the event carries no trace context."""
    if not _tracing():
        return contextlib.nullcontext(trace.INVALID_SPAN)
    return tracer().start_as_current_span(
        name,
        context=trace_context_of(metadata),
        kind=SpanKind.CONSUMER,
        attributes={"chronicle.event.type": event_type, "chronicle.position": position},
    )


def _ended_by(span: Span, error: Exception, outcome_attribute: str) -> None:
    code = getattr(type(error), "code", None)
    if isinstance(code, str):
        span.set_attribute(outcome_attribute, code.lower())
        return
    span.set_attribute(outcome_attribute, "error")
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
