"""The `chronicle` command: serve, migrate, schema."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from api.settings import Settings


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def serve(settings: Settings) -> None:
    """Run the GraphQL service with uvicorn until SIGINT or SIGTERM."""
    import uvicorn

    from api.app import create_app

    _configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        timeout_graceful_shutdown=10,
    )


async def _migrate(settings: Settings) -> None:
    from api.app import _describe
    from api.embedded_db import EmbeddedPostgres
    from store import migrations
    from store.database import create_engine

    embedded = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(settings.pgdata)
        url = await asyncio.to_thread(embedded.start)
    logging.getLogger("chronicle").info("migrating %s", _describe(url))
    engine = create_engine(url, pool_size=1)
    try:
        await migrations.upgrade(engine)
        revision = await migrations.current_revision(engine)
        print(f"database schema at revision {revision}")
    finally:
        await engine.dispose()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="chronicle",
        description="Chronicle: a CQRS and event-sourcing GraphQL service on PostgreSQL. "
        "Configuration comes from the environment (DATABASE_URL, BROADCAST_URL, LOG_LEVEL, "
        "CHRONICLE_DATA_DIR, ...); flags override it.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_parser = commands.add_parser(
        "serve",
        help="run the GraphQL service",
        description="Run the GraphQL service (GraphiQL and websockets at /graphql). Without "
        "DATABASE_URL it starts an embedded PostgreSQL under the data folder and stops it on "
        "exit. Migrates the database on start unless --no-migrate.",
    )
    serve_parser.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve_parser.add_argument(
        "--data-dir", type=Path, help="folder of the embedded database (default ./.chronicle)"
    )
    serve_parser.add_argument(
        "--no-migrate", action="store_true", help="do not run migrations on start"
    )
    serve_parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    migrate_parser = commands.add_parser(
        "migrate",
        help="upgrade the database schema to the latest revision",
        description="Upgrade the database schema (Alembic) to the latest revision.",
    )
    migrate_parser.add_argument("--data-dir", type=Path, help="folder of the embedded database")

    commands.add_parser(
        "schema",
        help="print the GraphQL schema (SDL)",
        description="Print the service's GraphQL schema in SDL, as committed in "
        "api/schema.graphql.",
    )

    args = parser.parse_args(argv)
    settings = Settings.from_env()
    overrides = {
        name: value
        for name in ("host", "port", "data_dir", "log_level")
        if (value := getattr(args, name, None)) is not None
    }
    if getattr(args, "no_migrate", False):
        overrides["migrate_on_start"] = False
    settings = dataclasses.replace(settings, **overrides)

    if args.command == "serve":
        serve(settings)
    elif args.command == "migrate":
        _configure_logging(settings.log_level)
        asyncio.run(_migrate(settings))
    elif args.command == "schema":
        from api.schema import sdl

        sys.stdout.write(sdl())


if __name__ == "__main__":
    main()
