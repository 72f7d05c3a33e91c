"""What every resolver gets: the services of the composition root and the request."""

from __future__ import annotations

from dataclasses import dataclass

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from api.loaders import Loaders
from api.settings import Settings
from projections.live import LiveFeed
from projections.runner import ProjectionRunner
from store.command_handler import CommandContext, CommandHandler
from store.event_store import EventStore
from store.serialization import Aggregates


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """Built once in the app's lifespan; shared by every request."""

    settings: Settings
    engine: AsyncEngine
    store: EventStore
    aggregates: Aggregates
    handler: CommandHandler
    runner: ProjectionRunner
    live: LiveFeed


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    services: Services
    loaders: Loaders
    request: Request | WebSocket
    response: Response | WebSocket | None = None

    def command_context(self, command_id: str | None) -> CommandContext:
        headers = self.request.headers
        return CommandContext(
            command_id=command_id,
            correlation_id=headers.get("x-correlation-id"),
            actor=headers.get("x-actor") or "anonymous",
        )


Info = strawberry.Info[Context, None]
