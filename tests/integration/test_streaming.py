"""What each push of a subscription costs the server: no memory kept per event, and one
execution per event for subscribers of the same document."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import AsyncGenerator
from typing import Any

import pytest
import strawberry
from graphql import ExecutionResult, parse
from strawberry.extensions import ParserCache

from api.errors import ErrorCodes
from api.schema import ChronicleSchema
from api.streaming import PerEventExecutor, Shareable, StreamingExtensionsRunner


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Tick:
    n: int


@strawberry.type
class Beat(Shareable):
    n: int

    @strawberry.field
    def doubled(self) -> int:
        RESOLVED.append(self.n)
        return self.n * 2


RESOLVED: list[int] = []
BEATS = [Beat(n=n) for n in range(5)]


@strawberry.type
class Subscription:
    @strawberry.subscription  # type: ignore[untyped-decorator]
    async def ticks(self, count: int) -> AsyncGenerator[Tick, None]:
        for n in range(count):
            yield Tick(n=n)

    @strawberry.subscription  # type: ignore[untyped-decorator]
    async def beats(self, offset: int = 0) -> AsyncGenerator[Beat, None]:
        for beat in BEATS:
            yield beat
            await asyncio.sleep(0)  # let the other subscribers take this beat too

    @strawberry.subscription  # type: ignore[untyped-decorator]
    async def private_beats(self) -> AsyncGenerator[Tick, None]:
        for beat in BEATS:
            yield Tick(n=beat.n)
            await asyncio.sleep(0)


# As build_schema has it: a parsed document is shared by the operations that send its text.
SCHEMA = ChronicleSchema(
    query=Query,
    subscription=Subscription,
    extensions=[ErrorCodes, lambda: ParserCache(maxsize=16)],
)


def traced_memory() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def test_a_long_subscription_keeps_no_memory_per_event() -> None:
    stream = await SCHEMA.subscribe("subscription { ticks(count: 3000) { n } }")
    seen = 0
    tracemalloc.start()
    try:
        async for result in stream:
            assert result.errors is None
            seen += 1
            if seen == 500:
                early = traced_memory()
            elif seen == 3000:  # still subscribed: what the subscription holds is alive
                grown = traced_memory() - early
    finally:
        tracemalloc.stop()
    # graphql-core alone keeps some 870 bytes per event for the life of the subscription.
    assert grown < 20 * 2500, f"{grown} bytes kept for 2,500 events"


async def collect(document: str, variables: dict[str, Any] | None = None) -> list[Any]:
    stream = await SCHEMA.subscribe(document, variable_values=variables)
    return [result.data async for result in stream]


async def test_subscribers_of_the_same_document_share_each_events_execution() -> None:
    RESOLVED.clear()
    document = "subscription($o: Int) { beats(offset: $o) { n doubled } }"
    same = await asyncio.gather(*(collect(document, {"o": 0}) for _ in range(3)))
    expected = [{"beats": {"n": n, "doubled": 2 * n}} for n in range(5)]
    assert same == [expected] * 3
    assert sorted(RESOLVED) == list(range(5)), "each event resolved once for three subscribers"

    RESOLVED.clear()
    other = await asyncio.gather(collect(document, {"o": 1}), collect(document, {"o": 2}))
    assert other == [expected] * 2
    assert sorted(RESOLVED) == sorted([*range(5), *range(5)]), "other variables: not shared"


async def test_payloads_not_marked_shareable_are_executed_for_each_subscriber() -> None:
    document = "subscription { privateBeats { n } }"
    results = await asyncio.gather(collect(document), collect(document))
    assert results[0] == results[1] == [{"privateBeats": {"n": n}} for n in range(5)]


# What the two patches above rest on: graphql-core's subfield memo, reset per event in
# PerEventExecutor, and strawberry's runner hook, ChronicleSchema.create_extensions_runner.
# An upgrade of graphql-core or strawberry-graphql (both pinned in pyproject.toml) that moves
# either fails here, by name, as well as in the measures above.


def test_each_event_collects_its_subfields_in_a_memo_of_its_own() -> None:
    subscription = PerEventExecutor.build(
        SCHEMA._schema, parse("subscription { ticks(count: 1) { n } }")
    )
    event = subscription.build_per_event_executor(Tick(n=7))
    result = event.execute_operation()
    assert isinstance(result, ExecutionResult)
    assert result.data == {"ticks": {"n": 7}}
    assert event._relevant_sub_fields, (
        "graphql-core no longer memoizes subfields in Executor._relevant_sub_fields: "
        "PerEventExecutor.build_per_event_executor resets a memo nothing uses"
    )
    assert not subscription._relevant_sub_fields, "the event's memo is the subscription's"


async def test_every_streamed_result_goes_through_the_schemas_extensions_runner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pushed: list[object] = []
    on_stream_result = StreamingExtensionsRunner.on_stream_result

    def counted(runner: StreamingExtensionsRunner, result: Any) -> Any:
        pushed.append(result)
        return on_stream_result(runner, result)

    monkeypatch.setattr(StreamingExtensionsRunner, "on_stream_result", counted)
    stream = await SCHEMA.subscribe("subscription { ticks(count: 3) { n } }")
    results = [result async for result in stream]
    assert [result.data for result in results] == [{"ticks": {"n": n}} for n in range(3)]
    assert pushed == results, "strawberry streams results past ChronicleSchema's runner"
