"""The composition root: `create_app(settings)` builds every service inside the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from api.broadcast import RingListener, open_broadcast
from api.console import console_routes
from api.context import Services
from api.cors import cors
from api.headers import SecurityHeaders
from api.health import health_routes
from api.metrics import metrics_routes, process_gauges
from api.observe import ObservedRequests
from api.playground import playground_routes
from api.schema import ChronicleSchema
from api.settings import Settings
from api.tracing import start_tracing
from api.view import graphql_endpoint
from domain import catalog, orders, posts, reviews, users
from projections.catalog import ProductsProjector
from projections.fulfilment import FulfilmentProcess
from projections.live import LiveFeed
from projections.orders import OrdersProjector
from projections.owners import StreamOwnersProjector
from projections.posts import PostsProjector
from projections.projector import Projector
from projections.reviews import ReviewsProjector
from projections.runner import ProjectionRunner
from projections.users import UsersProjector, UserSummaryProjector
from projections.workers import OnFailure
from store import migrations
from store.command_handler import CommandHandler
from store.database import create_engine, plain_url
from store.doorbell import RING_CHANNEL, Doorbell, Notify, pg_notifier
from store.event_store import EventStore
from store.serialization import Aggregates

if TYPE_CHECKING:
    from api.embedded_postgres import EmbeddedPostgres

log = logging.getLogger("chronicle")

STOREFRONT = Path(__file__).resolve().parent.parent / "examples" / "storefront" / "dist"
"""The example frontend's committed build: there in a checkout (and so with `pip install -e .`);
a wheel does not carry it, and then nothing is served at /examples/storefront."""


def build_aggregates() -> Aggregates:
    """The registry of every decider the service runs, with its snapshot policy: built once
    here, it owns the event codec and the upcasters the store reads through."""
    aggregates = Aggregates()
    aggregates.register(users.DECIDER, snapshot_every=100)
    aggregates.register(catalog.DECIDER, snapshot_every=100)
    aggregates.register(orders.DECIDER, snapshot_every=100)
    aggregates.register(posts.DECIDER, snapshot_every=100)
    aggregates.register(reviews.DECIDER, snapshot_every=None)  # one event a stream
    return aggregates


def all_projectors() -> list[Projector]:
    """Every read model the service keeps."""
    return [
        UsersProjector(),
        UserSummaryProjector(),
        ProductsProjector(),
        OrdersProjector(),
        PostsProjector(),
        ReviewsProjector(),
        StreamOwnersProjector(r.decider for r in build_aggregates().registrations),
    ]


def _describe(url: str) -> str:
    """A database URL without its password, for the logs."""
    scheme, _, rest = plain_url(url).partition("://")
    credentials, at, location = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}{at}{location}" if at else f"{scheme}://{location}"


@contextlib.asynccontextmanager
async def services(settings: Settings) -> AsyncIterator[Services]:
    """Every service, built in order and torn down in reverse; background tasks start here."""
    embedded = None
    url = settings.database_url
    if url is None:
        from api.embedded_postgres import EmbeddedPostgres

        embedded = EmbeddedPostgres(settings.pgdata)
        url = await anyio.to_thread.run_sync(embedded.start)
        log.info("database: embedded PostgreSQL in %s (%s)", settings.pgdata, _describe(url))
    else:
        log.info("database: %s (from DATABASE_URL)", _describe(url))
    engine = create_engine(url)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    async with contextlib.AsyncExitStack() as cleanup:
        if embedded is not None:
            cleanup.push_async_callback(_let_go, embedded)
        cleanup.push_async_callback(engine.dispose)
        if settings.tracing:
            cleanup.callback(start_tracing(engine))
        if settings.migrate_on_start:
            await migrations.upgrade(engine)
            log.info("database schema is up to date")
        ring_url, notify = await _doorbell(settings, url, engine, cleanup)
        aggregates = build_aggregates()
        store = EventStore(engine, aggregates.upcasters, Doorbell(notify))
        cleanup.push_async_callback(store.close)
        handler = CommandHandler(store, aggregates)
        runner = ProjectionRunner(
            engine,
            store,
            all_projectors(),
            process_managers=[FulfilmentProcess(engine, handler)],
            batch_size=settings.projection_batch_size,
            poll_interval=settings.safety_poll,
            on_failure=OnFailure(
                retries=settings.projection_retries, park=settings.park_failed_events
            ),
        )
        live = LiveFeed(
            store, buffer_size=settings.subscriber_buffer, poll_interval=settings.safety_poll
        )

        def wake_readers(position: int | None = None) -> None:
            runner.wake(position)
            live.wake(position)

        store.doorbell.listen_locally(wake_readers)
        await runner.ensure_checkpoints()

        async def stop_tasks() -> None:
            stop.set()
            await asyncio.gather(*tasks)

        cleanup.push_async_callback(stop_tasks)
        tasks.append(asyncio.create_task(live.run(stop), name="live feed"))
        if settings.run_projections:
            tasks.append(asyncio.create_task(runner.run(stop), name="projection runner"))
        if ring_url is not None:
            rings = RingListener(ring_url, wake_readers)
            tasks.append(asyncio.create_task(rings.run(stop), name="doorbell listener"))
        yield Services(
            settings=settings,
            engine=engine,
            store=store,
            aggregates=aggregates,
            handler=handler,
            runner=runner,
            live=live,
        )


async def _let_go(embedded: EmbeddedPostgres) -> None:
    """Stop the embedded PostgreSQL, or only detach while another process serves from it (a
    `chronicle projections status` beside a running `serve`)."""
    if await anyio.to_thread.run_sync(embedded.stop):
        log.info("embedded PostgreSQL stopped")
    else:
        log.info("detached from the embedded PostgreSQL: another process still uses it")


async def _doorbell(
    settings: Settings, database_url: str, engine: AsyncEngine, cleanup: contextlib.AsyncExitStack
) -> tuple[str | None, Notify | None]:
    """Where rings come from (a broadcaster URL, or None for this process only) and how they
    are sent."""
    chosen = settings.broadcast_url
    if chosen is None:
        log.info("doorbell: the database (LISTEN/NOTIFY)")
        return plain_url(database_url), pg_notifier(engine)
    if chosen.startswith("memory://"):
        log.info("doorbell: this process only (memory://)")
        return None, None
    publisher = open_broadcast(chosen)
    await publisher.connect()
    cleanup.push_async_callback(publisher.disconnect)
    log.info("doorbell: %s", chosen.split("@")[-1])

    async def publish(payload: str) -> None:
        await publisher.publish(RING_CHANNEL, payload)

    return chosen, publish


def example_routes(storefront: Path = STOREFRONT) -> list[BaseRoute]:
    """The example storefront at /examples/storefront, when its build is there."""
    if not (storefront / "index.html").is_file():
        return []
    files = StaticFiles(directory=storefront, html=True)
    return [Mount("/examples/storefront", app=files, name="storefront")]


class Chronicle(Starlette):
    """Starlette with the security headers outermost, outside even its error middleware: the
    500 it answers an unhandled exception with carries them too; outside them, every request
    named and counted (api/observe.py), its 500s included. `drain()` ends what streams
    over HTTP, before the server shuts down (api/server.py)."""

    def __init__(self, *args: Any, drain: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drain = drain

    def build_middleware_stack(self) -> ASGIApp:
        return ObservedRequests(SecurityHeaders(super().build_middleware_stack()))


def create_app(settings: Settings | None = None) -> Chronicle:
    settings = settings or Settings.from_env()
    graphql = graphql_endpoint(settings)
    rate_limits = cast(ChronicleSchema, graphql.schema).rate_limits

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with services(settings) as built, process_gauges(built):
            app.state.services = built
            # What start-up built lives as long as the process (the schema, the mappers, the
            # modules): out of the collector's sight, a full collection no longer walks it, and
            # its pauses leave the requests' p99 (benchmarks/http.py: 148 ms to about 60).
            gc.collect()
            gc.freeze()
            log.info("Chronicle ready: GraphQL at /graphql")
            try:
                yield
            finally:
                gc.unfreeze()  # an app served in a process that goes on (tests) is collected
                if rate_limits is not None:
                    await rate_limits.close()  # its Redis connections

    async def health(request: Request) -> Response:
        live = request.app.state.services.live
        return JSONResponse(
            {
                "status": "ok",
                "liveSubscribers": live.subscriber_count,
                "bufferedEvents": live.buffered,
            }
        )

    async def home(request: Request) -> Response:
        return RedirectResponse("/graphql")

    return Chronicle(
        routes=[
            Route("/", home),
            Route("/health", health),
            *health_routes(),
            *metrics_routes(settings),
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            *playground_routes(served=graphql.graphql_ide is not None),
            *console_routes(),
            *example_routes(),
        ],
        middleware=[cors(settings.allowed_origins)],  # answers preflights before any route
        lifespan=lifespan,
        drain=graphql.drain,
    )
