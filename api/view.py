"""The GraphQL endpoint: queries and mutations over HTTP, subscriptions over websockets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from api.context import Context, Services
from api.loaders import Loaders
from api.schema import build_schema
from api.settings import Settings

LEGACY_MESSAGE_TYPES = frozenset({"connection_init", "connection_terminate", "start", "stop"})


class LegacyGraphQLWSHandler(BaseGraphQLWSHandler[Context, None]):
    """The legacy graphql-ws protocol, answering a message it does not know with an error.

    Strawberry drops such messages without a word; the protocol's reference server
    (subscriptions-transport-ws) answers them with an `error` message, and so do we.
    """

    async def handle_message(self, message: Any) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if kind not in LEGACY_MESSAGE_TYPES:
            error: dict[str, Any] = {
                "type": "error",
                "payload": {
                    "message": f"unknown message type {kind!r}",
                    "extensions": {"code": "BAD_MESSAGE"},
                },
            }
            if isinstance(message, dict) and isinstance(message.get("id"), str):
                error["id"] = message["id"]
            await self.websocket.send_json(error)
            return
        await super().handle_message(message)


class ChronicleGraphQL(GraphQL[Context, None]):
    graphql_ws_handler_class = LegacyGraphQLWSHandler

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        services: Services = request.app.state.services
        return Context(
            services=services,
            loaders=Loaders.for_request(services.engine),
            request=request,
            response=response,
        )


def graphql_endpoint(settings: Settings) -> ChronicleGraphQL:
    """GraphiQL, HTTP and both websocket protocols (graphql-transport-ws, legacy graphql-ws)."""
    return ChronicleGraphQL(
        build_schema(settings),
        keep_alive=True,
        keep_alive_interval=settings.ws_keep_alive,
        connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout),
        allowed_origins=settings.allowed_origins,
    )
