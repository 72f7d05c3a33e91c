"""Parsed and validated request documents, kept for the next request that sends the same text.

Parsing and validating a document is about half the CPU of a small query. Strawberry's
`ParserCache` and `ValidationCache` key on the document and the validation rules, but its depth
and alias limiters build new rule classes for every request: the key never repeated, every
request was validated afresh and stored as a new entry, each holding its whole document (a
10 MB comment-padded text held 10 MB). Here the rules are built once per schema and the cache
is keyed by the document's text, bounded by entries and by bytes.
"""

from __future__ import annotations

import contextlib
import sys
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import ASTValidationRule, DocumentNode, GraphQLError, parse
from graphql.language import Token
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.schema import validate_document

BYTES_PER_TOKEN = 600
"""What a parsed document keeps per lexical token (comments included): the token, its share of
AST nodes and locations; measured with tracemalloc at about 530 bytes."""


@dataclass(slots=True)
class Prepared:
    """A document as parsed, and its validation errors once validated."""

    document: DocumentNode
    weight: int
    rules: tuple[type[ASTValidationRule], ...] | None = None
    errors: list[GraphQLError] | None = None


@dataclass
class DocumentCache:
    """Least recently used documents, at most `max_entries` of them and `max_bytes` in all.

    A document heavier than an eighth of the byte budget is served but not kept, so one
    client's large documents cannot evict everybody's small ones.
    """

    max_entries: int
    max_bytes: int
    max_tokens: int
    rules: tuple[type[ASTValidationRule], ...]
    """The service's own validation rules, built once so that each request's set is the same."""
    hits: int = 0
    misses: int = 0
    validations: int = 0
    size: int = 0
    """Bytes the kept documents weigh, by the estimate of `weigh`."""
    _entries: OrderedDict[str, Prepared] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self._entries)

    def parse(self, query: str) -> DocumentNode:
        """The document of `query`, parsed at most once while it stays in the cache."""
        entry = self._entries.get(query)
        if entry is not None:
            self._entries.move_to_end(query)
            self.hits += 1
            return entry.document
        self.misses += 1
        document = parse(query, max_tokens=self.max_tokens)
        self._keep(query, Prepared(document, weigh(query, document)))
        return document

    def validate(
        self,
        query: str,
        document: DocumentNode,
        schema: Any,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        """The validation errors of `document` (the one `parse` gave for `query`)."""
        entry = self._entries.get(query)
        if entry is not None and entry.document is document and entry.rules == rules:
            assert entry.errors is not None
            return entry.errors
        self.validations += 1
        errors = validate_document(schema, document, rules)
        if entry is not None and entry.document is document:
            entry.rules, entry.errors = rules, errors
        return errors

    def _keep(self, query: str, entry: Prepared) -> None:
        if entry.weight > self.max_bytes // 8:
            return
        self._entries[query] = entry
        self.size += entry.weight
        while len(self._entries) > self.max_entries or self.size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.size -= evicted.weight


def weigh(query: str, document: DocumentNode) -> int:
    """Bytes a kept document holds: its text (the AST's locations keep the source) and its
    tokens, comments included."""
    tokens = 0
    token: Token | None = document.loc.start_token if document.loc else None
    while token is not None:
        tokens += 1
        token = token.next
    return sys.getsizeof(query) + tokens * BYTES_PER_TOKEN


def limiter_rules(max_depth: int, max_aliases: int) -> tuple[type[ASTValidationRule], ...]:
    """The depth and alias limits as validation rules, built once."""
    return (depth_rule(max_depth, None, None), aliases_rule(max_aliases))


class PreparedDocuments(SchemaExtension):
    """Parses and validates through the schema's `DocumentCache`, with its limits: a token
    budget for the parser (comments count) and the depth and alias rules."""

    def __init__(self, cache: DocumentCache) -> None:
        self.cache = cache

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self.cache.max_tokens
        context.validation_rules = context.validation_rules + self.cache.rules
        yield

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            # A syntax error is left for strawberry's own parse to report: raised from this
            # hook, it escapes a subscription's error handling.
            with contextlib.suppress(GraphQLError):
                context.graphql_document = self.cache.parse(context.query)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.query and context.graphql_document is not None:
            context.pre_execution_errors = self.cache.validate(
                context.query,
                context.graphql_document,
                context.schema._schema,
                context.validation_rules,
            )
        yield
