"""The strawberry schema: every query and mutation module merged, with its guards."""

from __future__ import annotations

from typing import Any, cast

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from api.catalog import CatalogMutations, CatalogQueries
from api.errors import ErrorCodes, triage
from api.history import HistoryQueries
from api.operations import OperationMutations, OperationQueries
from api.orders import OrderMutations, OrderQueries
from api.posts import PostMutations, PostQueries
from api.scalars import SCALARS
from api.settings import Settings
from api.subscriptions import Subscription
from api.users import UserMutations, UserQueries

Query = merge_types(
    "Query",
    (UserQueries, CatalogQueries, OrderQueries, PostQueries, HistoryQueries, OperationQueries),
)
Mutation = merge_types(
    "Mutation",
    (UserMutations, CatalogMutations, OrderMutations, PostMutations, OperationMutations),
)


class PerEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """Runs each event of a subscription with a memo of collected subfields of its own.

    graphql-core 3.3.2 gives every event's executor the subscription's memo, keyed by the id of
    field lists that are new at every event: each event adds an entry that lives as long as the
    subscription (some 870 bytes per event per subscriber, and longer and longer garbage
    collections). Within one event the memo still does its job.
    """

    def build_per_event_executor(self, payload: Any) -> PerEventExecutor:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        return cast(PerEventExecutor, executor)


class ChronicleSchema(strawberry.Schema):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("execution_context_class", PerEventExecutor)
        super().__init__(*args, **kwargs)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Refusals are answers, not faults: only what will be masked is logged.
        triage(errors)


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    extensions: list[Any] = [
        ErrorCodes,
        lambda: QueryDepthLimiter(max_depth=settings.max_query_depth),
        lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
        lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
    ]
    return ChronicleSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(scalar_map=SCALARS),
    )


def sdl() -> str:
    return build_schema().as_str() + "\n"
