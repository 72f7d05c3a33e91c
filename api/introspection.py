"""Introspection for admins only: the schema is not handed to every caller of a production
service (`CHRONICLE_INTROSPECTION=public` opens it again). `__typename` stays free: clients
need it to tell the members of a union apart."""

from __future__ import annotations

import re
from collections.abc import Iterator

from graphql import FieldNode, GraphQLError, validate
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension

from api.context import Context

MENTIONS_INTROSPECTION = re.compile(r"__schema|__type(?!name)")
"""`__schema` or `__type`, the fields that return the schema's types: a document whose text
names neither cannot select one (GraphQL names have no escapes), and the rule is not run for
the `__typename` a client such as Apollo's adds to every selection."""


def refusal(found: GraphQLError) -> GraphQLError:
    """What the caller is told for the first introspection field of its document."""
    node = found.nodes[0] if found.nodes else None
    name = node.name.value if isinstance(node, FieldNode) else "__schema"
    return GraphQLError(
        f"Introspection is for admins only: this document selects {name}",
        nodes=found.nodes,
        extensions={"code": "FORBIDDEN"},
    )


class AdminIntrospection(SchemaExtension):
    """Refuses `__schema` and `__type` to callers who are not admins, as a validation error
    coded FORBIDDEN: nothing of the document runs.

    It runs after PreparedDocuments has validated the document (extensions enter their hooks
    in order) and only when that left no error: the cached validation is per document, not per
    caller, so the caller's part is checked here and never stored.
    """

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        caller = context.context
        admin = isinstance(caller, Context) and caller.identity.is_admin
        document = context.graphql_document
        if (
            not admin
            and document is not None
            and not context.pre_execution_errors
            and (context.query is None or MENTIONS_INTROSPECTION.search(context.query))
        ):
            found = validate(context.schema._schema, document, [NoSchemaIntrospectionCustomRule])
            if found:
                context.pre_execution_errors = [refusal(found[0])]
        yield
