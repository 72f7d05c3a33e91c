"""Text no argument may hold: NUL and lone surrogates, refused once for the whole API.

PostgreSQL text cannot hold NUL, and a lone surrogate (which JSON's `\\ud800` and a GraphQL
string's escape can both produce) cannot be encoded for it: either one in an id, a search or a
name would fail deep inside a query as an INTERNAL error. Every string of the variables and every
string literal of the document is checked before any resolver runs, so such a request is
VALIDATION_FAILED and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    ListValueNode,
    ObjectValueNode,
    StringValueNode,
    ValueNode,
    VariableDefinitionNode,
    Visitor,
    visit,
)
from graphql.language.visitor import VisitorAction
from strawberry.extensions import SchemaExtension

from api.errors import validation_failed
from domain.text import unstorable


class RefuseUnstorableText(SchemaExtension):
    """VALIDATION_FAILED, naming the argument, for a NUL or a lone surrogate in any input."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        for path, text in _variable_strings(context.variables or {}, "$"):
            _check(path, text)
        if context.graphql_document is not None:
            for path, text in _literal_strings(context.graphql_document):
                _check(path, text)
        yield


def _check(path: str, text: str) -> None:
    if (reason := unstorable(text)) is not None:
        raise validation_failed(f"{path} holds {reason}, which no text may hold", argument=path)


def _variable_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}{key}" if path == "$" else f"{path}.{key}"
            yield from _variable_strings(key, name)
            yield from _variable_strings(item, name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _variable_strings(item, f"{path}[{index}]")


def _value_strings(node: ValueNode, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, StringValueNode):
        yield path, node.value
    elif isinstance(node, ObjectValueNode):
        for field in node.fields:
            yield from _value_strings(field.value, f"{path}.{field.name.value}")
    elif isinstance(node, ListValueNode):
        for index, item in enumerate(node.values):
            yield from _value_strings(item, f"{path}[{index}]")


class _Literals(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def enter_argument(self, node: ArgumentNode, *_: object) -> VisitorAction:
        self.found.extend(_value_strings(node.value, node.name.value))
        return self.SKIP

    def enter_variable_definition(self, node: VariableDefinitionNode, *_: object) -> VisitorAction:
        if node.default_value is not None:
            self.found.extend(_value_strings(node.default_value, f"${node.variable.name.value}"))
        return self.SKIP


def _literal_strings(document: DocumentNode) -> list[tuple[str, str]]:
    literals = _Literals()
    visit(document, literals)
    return literals.found
