"""The strawberry schema: every query and mutation module merged, with its guards."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from api.catalog import CatalogMutations, CatalogQueries
from api.errors import ErrorCodes, triage
from api.history import HistoryQueries
from api.input_text import RefuseUnstorableText
from api.operations import OperationMutations, OperationQueries
from api.orders import OrderMutations, OrderQueries
from api.posts import PostMutations, PostQueries
from api.scalars import SCALARS
from api.settings import Settings
from api.streaming import PerEventExecutor, StreamingExtensionsRunner
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


class ChronicleSchema(strawberry.Schema):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("execution_context_class", PerEventExecutor)
        super().__init__(*args, **kwargs)

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return StreamingExtensionsRunner(execution_context, extensions)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Refusals are answers, not faults: only what will be masked is logged.
        triage(errors)


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    extensions: list[Any] = [
        ErrorCodes,
        RefuseUnstorableText,
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
