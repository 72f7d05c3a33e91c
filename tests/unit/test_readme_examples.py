"""The README's GraphQL examples are operations the schema takes: a renamed field or argument,
or a mutation without its example, fails here rather than in a newcomer's playground."""

from __future__ import annotations

import re
from pathlib import Path

from graphql import DocumentNode, OperationDefinitionNode, parse, validate

from api.schema import build_schema

README = Path(__file__).resolve().parents[2] / "README.md"
PLACEHOLDER = re.compile(r'"<[^">]+>"')


def examples() -> list[OperationDefinitionNode]:
    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(), flags=re.S)
    # "<streamId>", "<position>": any value of the argument's type will do.
    return [
        definition
        for block in blocks
        for definition in parse(PLACEHOLDER.sub('"1"', block)).definitions
        if isinstance(definition, OperationDefinitionNode)
    ]


def test_every_example_validates_against_the_schema() -> None:
    schema = build_schema()._schema
    found = examples()
    assert len(found) > 20
    for operation in found:
        errors = validate(schema, DocumentNode(definitions=(operation,)))
        assert not errors, (
            operation.loc and operation.loc.source.body[operation.loc.start : operation.loc.end],
            errors,
        )


def test_every_mutation_has_an_example() -> None:
    shown = {
        selection.name.value  # type: ignore[attr-defined]
        for operation in examples()
        if operation.operation.value == "mutation"
        for selection in operation.selection_set.selections
    }
    mutation = build_schema()._schema.mutation_type
    assert mutation is not None
    assert set(mutation.fields) <= shown, sorted(set(mutation.fields) - shown)
