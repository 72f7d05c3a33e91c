"""The GraphQL service: schema, Starlette app factory (the composition root), settings, CLI."""
