"""What every resolver gets: the services of the composition root and the request."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from api.auth import ANONYMOUS, Identity
from api.loaders import Loaders
from api.settings import Settings
from domain.access import Actor
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


@dataclass(slots=True, kw_only=True)
class Context:
    """A request's (or a websocket's) context. Not frozen: a websocket's identity and its
    connection_init payload arrive after the context is made."""

    services: Services
    loaders: Loaders
    request: Request | WebSocket
    response: Response | WebSocket | None = None
    identity: Identity = ANONYMOUS
    """The verified caller (see api/auth.py)."""
    connection_params: dict[str, Any] | None = None
    """A websocket's connection_init payload."""
    own_user_id: str | None = None
    """The id of the user bound to the caller's subject, once looked up (api/scopes.py)."""
    min_position: int | None = None
    """The highest `minPosition` the request gave: every read model it reads honours it."""
    waits: dict[tuple[str, int], asyncio.Future[None]] = field(default_factory=dict)
    """The request's waits for read models to reach a position (api/reads.py)."""

    @property
    def actor(self) -> Actor:
        """The caller, as the domain's rules of who may do and read what know it."""
        return Actor(subject=self.identity.subject, roles=self.identity.roles)

    def command_context(self, command_id: str | None) -> CommandContext:
        """Who sends a command: the verified identity, never a header the client chose; the
        correlation id may come from the client."""
        return CommandContext(
            command_id=command_id,
            correlation_id=self.request.headers.get("x-correlation-id"),
            actor=self.identity.actor,
            roles=tuple(sorted(self.identity.roles)),
            caller=self.actor,
        )


Info = strawberry.Info[Context, None]
