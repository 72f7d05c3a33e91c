"""How each result a subscription streams is executed: the per-push costs, kept small.

A push to a subscriber runs the subscription's selection set on the event (graphql-core), the
schema extensions' per-result hooks (strawberry), then the JSON and the websocket frame. For
`events`, whose subscribers mostly ask the same thing, the first two are done once per event
and document, not once per subscriber.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from contextvars import ContextVar
from typing import Any

from graphql import ExecutionResult, OperationType
from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import StreamResultContextManager
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext

from api.money import ExactCentsExecutor

SHARED_RESULTS = 256
"""Per-event results kept for subscribers of the same document: a few events' worth."""


SUBSCRIBING: ContextVar[PerEventExecutor | None] = ContextVar("chronicle_subscribing", default=None)
"""The executor graphql-core built for the subscription being started in this task: it executes
the events of the subscription's shape (api/fanout.py)."""


class Shareable:
    """A subscription payload whose fields resolve the same for every subscriber (no resolver
    reads the request): subscribers of the same document and variables share its result."""

    __slots__ = ()


class PerEventExecutor(ExactCentsExecutor):
    """Runs each event of a subscription with a memo of collected subfields of its own, and
    once per shareable event and document.

    graphql-core 3.3.2 gives every event's executor the subscription's memo, keyed by the id of
    field lists that are new at every event: each event adds an entry that lives as long as the
    subscription (some 870 bytes per event per subscriber, and ever longer garbage collections).
    `build_per_event_executor` is public, the memo is not (`collect_subfields` is private and
    offers no hook): hence the pin on graphql-core in pyproject.toml, and the tests in
    tests/integration/test_streaming.py that fail when an upgrade moves the memo.
    """

    _variables: str | None = None
    """The subscription's variables as text, part of the key its events' results are shared by."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        built = super().build(*args, **kwargs)
        if isinstance(built, PerEventExecutor) and built.operation.operation is (
            OperationType.SUBSCRIPTION
        ):
            SUBSCRIBING.set(built)  # in the operation's own task: its resolver reads it
        return built

    @property
    def variables_text(self) -> str:
        """The coerced variables as JSON text with sorted keys."""
        if self._variables is None:
            self._variables = json.dumps(self.variable_values.coerced, sort_keys=True, default=str)
        return self._variables

    def build_per_event_executor(self, payload: Any) -> PerEventExecutor:
        self._variables = self.variables_text
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        return executor  # type: ignore[return-value]

    def execute_operation(self, serially: bool | None = None) -> Any:
        payload = self.root_value
        if not isinstance(payload, Shareable) or self._variables is None:
            return super().execute_operation(serially)
        key = (id(self.operation), self._variables, id(payload))
        shared = _SHARED.get(key)
        if shared is not None and shared[0] is payload and shared[1] is self.operation:
            _SHARED.move_to_end(key)
            return shared[2]
        result = super().execute_operation(serially)
        if isinstance(result, ExecutionResult) and not result.errors:
            # The entry holds the payload and the operation: their ids cannot be reused by
            # other objects while it lives.
            _SHARED[key] = (payload, self.operation, result)
            if len(_SHARED) > SHARED_RESULTS:
                _SHARED.popitem(last=False)
        return result


_SHARED: OrderedDict[tuple[int, str, int], tuple[Any, Any, ExecutionResult]] = OrderedDict()


def _acts(extension: SchemaExtension, hook: str) -> bool:
    return getattr(type(extension), hook) is not getattr(SchemaExtension, hook)


class StreamingExtensionsRunner(SchemaExtensionsRunner):
    """Visits, for each streamed result, only the extensions that do something with one.

    Strawberry asks every extension of the schema at every push; ours mostly act when a
    document is parsed and validated, and only error masking looks at results. The schema hands
    this runner to strawberry through its public `create_extensions_runner`; per result it
    delegates to strawberry's own runner over the few extensions that act.
    """

    def __init__(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension] | None = None
    ) -> None:
        super().__init__(execution_context, extensions)
        self._on_result = SchemaExtensionsRunner(
            execution_context, [e for e in self.extensions if _acts(e, "on_stream_result")]
        )
        self._with_results = SchemaExtensionsRunner(
            execution_context, [e for e in self.extensions if _acts(e, "get_results")]
        )

    def on_stream_result(self, result: Any) -> StreamResultContextManager:
        return self._on_result.on_stream_result(result)

    async def get_extensions_results(self, ctx: ExecutionContext) -> dict[str, Any]:
        return await self._with_results.get_extensions_results(ctx)
