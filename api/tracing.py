"""OpenTelemetry traces, exported over OTLP when the standard `OTEL_*` variables ask for them.

Off by default: no provider is installed, the GraphQL schema runs without the tracing extension,
the engine is not instrumented, and the store (store/tracing.py) starts no span.
On (`Settings.tracing`), the service installs the SDK's provider once per process, with a batch
processor and the OTLP/HTTP (protobuf) exporter; the SDK reads the other standard variables
itself (`OTEL_EXPORTER_OTLP_*` endpoint, headers and timeout, `OTEL_TRACES_SAMPLER`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`). The SDK, the exporter and the SQLAlchemy
instrumentation are the `chronicle[otel]` extra, imported (by api/tracing_sdk.py) only when on.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from graphql import GraphQLResolveInfo, OperationType
from opentelemetry import context, propagate
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.extensions.tracing import OpenTelemetryExtension
from strawberry.types import ExecutionContext


class GraphQLTracing(OpenTelemetryExtension):
    """strawberry's OpenTelemetry extension, tracing the operation and its root fields only.

    The extension's `resolve` is a coroutine function, so every field of a response, a page's
    hundreds of plain attributes too, would be awaited through it; its sync variant ends a
    span before an async resolver has run and leaves the command it sends outside the trace.
    Here a root field (a mutation, a query) gets the extension's span, current while its
    resolver runs, so the command spans it starts are its children; nested fields and
    subscription events pass straight through. Arguments are not recorded: they are the
    client's data (emails, addresses); the stream ids are on the command spans. A request that
    carries a trace context (`traceparent`, or what `OTEL_PROPAGATORS` reads) continues the
    client's trace.
    """

    def __init__(self, *, execution_context: ExecutionContext | None = None) -> None:
        super().__init__(execution_context=execution_context, arg_filter=_no_arguments)

    def on_operation(self) -> Generator[None, None, None]:
        operation = super().on_operation()
        request = getattr(self.execution_context.context, "request", None)
        token = context.attach(propagate.extract(getattr(request, "headers", {})))
        try:
            next(operation)  # starts the operation's span, in the client's trace if it has one
        finally:
            context.detach(token)
        try:
            yield
        finally:
            next(operation, None)  # ends it

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: str,
        **kwargs: Any,
    ) -> Any:
        if info.path.prev is not None or info.operation.operation is OperationType.SUBSCRIPTION:
            return _next(root, info, *args, **kwargs)
        return super().resolve(_next, root, info, *args, **kwargs)


def _no_arguments(arguments: dict[str, Any], info: GraphQLResolveInfo[Any]) -> dict[str, Any]:
    return {}


def start_tracing(engine: AsyncEngine) -> Callable[[], None]:
    """Install the SDK's provider, exporting over OTLP/HTTP, unless the process has one already
    (an earlier start, or a test's), and instrument `engine`; gives back what undoes the
    instrumentation. Raises when the `chronicle[otel]` extra is not installed."""
    try:
        from api import tracing_sdk
    except ImportError as missing:
        raise RuntimeError(
            "OTEL_* variables ask for traces, but the OpenTelemetry SDK is not installed: "
            "pip install 'chronicle[otel]'"
        ) from missing
    tracing_sdk.install_provider()
    return tracing_sdk.instrument_engine(engine)
