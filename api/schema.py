"""The strawberry schema: every query and mutation module merged, with its guards."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from api.catalog import CatalogQueries
from api.catalog_commands import CatalogMutations
from api.console_ops import ConsoleMutations, ConsoleQueries
from api.documents import DocumentCache, PreparedDocuments, limiter_rules
from api.errors import ErrorCodes, triage
from api.history import HistoryQueries
from api.input_text import RefuseUnstorableText
from api.introspection import AdminIntrospection
from api.operations import OperationMutations, OperationQueries
from api.order_commands import OrderMutations
from api.orders import OrderQueries
from api.parked import ParkedMutations, ParkedQueries
from api.post_commands import PostMutations
from api.posts import PostQueries
from api.rate_limits import RateLimited, RateLimits
from api.reviews import ReviewMutations, ReviewQueries
from api.scalars import SCALARS
from api.settings import Settings
from api.streaming import PerEventExecutor, StreamingExtensionsRunner
from api.subscriptions import Subscription
from api.tracing import GraphQLTracing
from api.user_commands import UserMutations
from api.users import UserQueries

Query = merge_types(
    "Query",
    (
        UserQueries,
        CatalogQueries,
        OrderQueries,
        PostQueries,
        ReviewQueries,
        HistoryQueries,
        OperationQueries,
        ParkedQueries,
        ConsoleQueries,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        UserMutations,
        CatalogMutations,
        OrderMutations,
        PostMutations,
        ReviewMutations,
        OperationMutations,
        ParkedMutations,
        ConsoleMutations,
    ),
)


class ChronicleSchema(strawberry.Schema):
    documents: DocumentCache | None = None
    """The parsed and validated documents this schema keeps (see api/documents.py)."""
    rate_limits: RateLimits | None = None
    """The callers' budgets of mutations and subscription starts (see api/rate_limits.py)."""

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


DOCUMENTS_KEPT = 256
DOCUMENT_BYTES_KEPT = 16 * 1024 * 1024


def build_schema(settings: Settings | None = None) -> ChronicleSchema:
    settings = settings or Settings()
    # The limits' rule classes are built here, once: rules new at every request would make
    # every request's validation key new, and the document cache useless.
    documents = DocumentCache(
        max_entries=DOCUMENTS_KEPT,
        max_bytes=DOCUMENT_BYTES_KEPT,
        max_tokens=settings.max_query_tokens,
        rules=limiter_rules(settings.max_query_depth, settings.max_aliases),
    )
    extensions: list[Any] = [
        ErrorCodes,
        RefuseUnstorableText,
        lambda: PreparedDocuments(documents),
    ]
    if not settings.introspection_public:
        extensions.append(AdminIntrospection)  # after PreparedDocuments: see its docstring
    rate_limits = RateLimits.from_settings(settings)
    if rate_limits is not None:
        extensions.append(lambda: RateLimited(rate_limits))
    if settings.tracing:
        extensions.insert(0, GraphQLTracing)  # outermost: its span holds all the others do
    schema = ChronicleSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(scalar_map=SCALARS),
    )
    schema.documents = documents
    schema.rate_limits = rate_limits
    return schema


def sdl() -> str:
    return build_schema().as_str() + "\n"
