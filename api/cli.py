"""The `chronicle` command: serve, migrate, projections, schema, grants, documents, token."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from api.settings import Settings


def _configure_logging(settings: Settings) -> None:
    from api.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def serve(settings: Settings) -> None:
    """Run the GraphQL service with uvicorn until SIGINT or SIGTERM."""
    from api.app import create_app
    from api.auth import Authenticator, OpenModeRefused, check_open_mode
    from api.server import run
    from api.trusted import ManifestError

    _configure_logging(settings)
    if settings.workers < 1:
        raise SystemExit("chronicle serve: --workers (CHRONICLE_WORKERS) must be 1 or more")
    try:
        check_open_mode(settings, Authenticator(settings))
        app = create_app(settings)
    except (OpenModeRefused, ManifestError) as refused:
        raise SystemExit(f"chronicle serve: {refused}") from None
    options = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": None,
        "timeout_graceful_shutdown": 10,
        "ws_max_size": settings.max_body_bytes,
        "ws_per_message_deflate": settings.ws_compression,
    }
    if settings.workers == 1:
        run(app, app.drain, **options)
    else:
        _serve_workers(settings, options)


def _serve_workers(settings: Settings, options: dict[str, object]) -> None:
    """`settings.workers` processes on one port. Each has its own live feed; they share the
    database's one elected projection runner and its doorbell (or BROADCAST_URL's). This
    process starts the embedded PostgreSQL if there is one and migrates, once, then hands
    each worker the environment it reads its settings from."""
    from api.embedded_postgres import EmbeddedPostgres
    from api.server import run_workers

    log = logging.getLogger("chronicle")
    with contextlib.ExitStack() as cleanup:
        url = settings.database_url
        if url is None:
            embedded = EmbeddedPostgres(settings.pgdata)
            url = embedded.start()
            cleanup.callback(embedded.stop)
        if settings.migrate_on_start:
            asyncio.run(_upgrade(url))
        shared = {"DATABASE_URL": url, "CHRONICLE_MIGRATE_ON_START": "false"}
        shared["LOG_LEVEL"] = settings.log_level
        if settings.metrics and settings.prometheus_multiproc_dir is None:
            # /metrics of any worker then counts them all (api/metrics.py).
            folder = tempfile.mkdtemp(prefix="chronicle-metrics-")
            cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
            shared["PROMETHEUS_MULTIPROC_DIR"] = folder
        os.environ.update(shared)
        log.info("serving with %d worker processes", settings.workers)
        run_workers(settings.workers, **options)


async def _upgrade(url: str) -> None:
    from store import migrations
    from store.database import create_engine

    engine = create_engine(url, pool_size=1)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()


async def _migrate(settings: Settings) -> None:
    from api.app import _describe
    from api.embedded_postgres import EmbeddedPostgres
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


async def _run_projections(settings: Settings) -> None:
    from api.app import services

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with services(dataclasses.replace(settings, run_projections=True)):
        logging.getLogger("chronicle").info("projection runner started; Ctrl-C stops it")
        await stop.wait()


async def _rebuild(settings: Settings, name: str) -> None:
    from tqdm import tqdm

    from api.app import services

    async with services(dataclasses.replace(settings, run_projections=False)) as built:
        if name in built.runner.process_managers:
            raise SystemExit(f"{name} is a process manager, not a read model: nothing to rebuild")
        if name not in built.runner.projectors:
            known = ", ".join(sorted(built.runner.projectors))
            raise SystemExit(f"no projection {name!r}; known: {known}")
        with tqdm(desc=f"rebuilding {name}", unit="position", file=sys.stderr) as bar:

            def progress(position: int, head: int) -> None:
                bar.total = head
                bar.n = position
                bar.refresh()

            await built.runner.drive_rebuild(name, progress)
            bar.n = bar.total or 0
        print(f"{name} rebuilt")


async def _verify(settings: Settings, name: str | None) -> int:
    """Verify one read model, or all of them; 0 if each matches a replay, 1 on drift, 2 if
    `name` is no read model."""
    from tqdm import tqdm

    from api.app import services
    from projections.verify import describe, verify_projection

    async with services(dataclasses.replace(settings, run_projections=False)) as built:
        runner = built.runner
        if name is not None and name not in runner.projectors:
            known = ", ".join(sorted(runner.projectors))
            what = (
                "a process manager, not a read model"
                if name in runner.process_managers
                else f"no read model; known: {known}"
            )
            print(f"{name} is {what}", file=sys.stderr)
            return 2
        drifted = False
        for each in [name] if name is not None else list(runner.projectors):
            with tqdm(desc=f"verifying {each}", unit="position", file=sys.stderr) as bar:

                def progress(position: int, head: int) -> None:
                    bar.total = head
                    bar.n = position
                    bar.refresh()

                verification = await verify_projection(
                    built.engine,
                    built.store,
                    runner.projector(each),
                    batch_size=runner.batch_size,
                    on_progress=progress,
                )
            print(describe(verification), flush=True)
            drifted = drifted or not verification.ok
        return 1 if drifted else 0


async def _status(settings: Settings) -> None:
    from api.app import services

    async with services(dataclasses.replace(settings, run_projections=False)) as built:
        statuses = await built.runner.statuses()
    print(f"{'name':<24} {'status':<11} {'position':>10} {'lag':>8}  updated")
    for s in statuses:
        print(f"{s.name:<24} {s.status:<11} {s.position:>10} {s.lag:>8}  {s.updated_at}")
        if s.error:
            print(f"  stopped at position {s.failed_position}: {s.error}")
        if s.parked:
            print(f"  {s.parked} events parked: chronicle projections parked {s.name}")


async def _parked(settings: Settings, name: str | None) -> int:
    """Print the parked events of one read model, or of every one; 2 if `name` is none."""
    from api.app import services
    from projections.errors import UnknownReadModel

    async with services(dataclasses.replace(settings, run_projections=False)) as built:
        try:
            parked = await built.runner.parked(name)
        except UnknownReadModel as unknown:
            print(unknown, file=sys.stderr)
            return 2
    if not parked:
        print("no parked events")
    for p in parked:
        print(
            f"{p.projection:<16} position {p.position:<10} {p.event_type} of {p.stream_id}, "
            f"{p.attempts} attempts, parked {p.parked_at:%Y-%m-%d %H:%M:%S%z}"
        )
        print(f"  {p.error}")
    return 0


async def _retry(settings: Settings, name: str) -> int:
    """Replay `name`'s parked events; 0 if none stays parked, 1 if some do, 2 if `name` is
    no read model."""
    from api.app import services
    from projections.errors import UnknownReadModel

    async with services(dataclasses.replace(settings, run_projections=False)) as built:
        try:
            retried = await built.runner.retry_parked(name)
        except UnknownReadModel as unknown:
            print(unknown, file=sys.stderr)
            return 2
    print(f"{name}: {retried.applied} applied, {retried.still_parked} still parked")
    return 1 if retried.still_parked else 0


async def _skip(settings: Settings, name: str, position: int) -> int:
    """Drop one parked event; 2 if there is none at `position` or `name` is no read model."""
    from api.app import services
    from projections.errors import NotParked, UnknownReadModel

    async with services(dataclasses.replace(settings, run_projections=False)) as built:
        try:
            await built.runner.skip_parked(name, position)
        except (UnknownReadModel, NotParked) as unknown:
            print(unknown, file=sys.stderr)
            return 2
    print(f"{name}: skipped the event parked at position {position}")
    return 0


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
    serve_parser.add_argument(
        "--workers",
        type=int,
        help="processes serving the port (default 1, or CHRONICLE_WORKERS): each has its own "
        "live feed; they share one elected projection runner",
    )

    migrate_parser = commands.add_parser(
        "migrate",
        help="upgrade the database schema to the latest revision",
        description="Upgrade the database schema (Alembic) to the latest revision.",
    )
    migrate_parser.add_argument("--data-dir", type=Path, help="folder of the embedded database")

    projections_parser = commands.add_parser(
        "projections",
        help="run, rebuild or inspect the read models",
        description="Operate the projections (read models).",
    )
    projection_commands = projections_parser.add_subparsers(
        dest="projections_command", required=True, metavar="ACTION"
    )
    projection_commands.add_parser(
        "run",
        help="run the projection runner alone (serve runs one in-process by default)",
        description="Run the projection runner until SIGINT or SIGTERM. One runner per database "
        "does the work (an advisory lock elects it); others stand by and take over.",
    )
    rebuild_parser = projection_commands.add_parser(
        "rebuild",
        help="rebuild one read model from the first event",
        description="Rebuild a read model into fresh tables from the first event, with a "
        "progress bar, and swap them in when caught up; queries keep answering meanwhile.",
    )
    rebuild_parser.add_argument("name", help="the projection, e.g. users")
    verify_parser = projection_commands.add_parser(
        "verify",
        help="compare read models with a replay of the log",
        description="Replay the log into scratch tables up to each read model's checkpoint and "
        "compare them row by row with the live tables at that same position, with a progress "
        "bar; print the keys that differ. Exit status 1 if any differ, 2 for an unknown NAME.",
    )
    verify_parser.add_argument("name", nargs="?", help="one projection (default: every one)")
    projection_commands.add_parser(
        "status",
        help="print each projection's position, lag and status",
        description="Print each projection's position, lag and status.",
    )
    parked_parser = projection_commands.add_parser(
        "parked",
        help="list the events read models parked",
        description="List the events read models parked instead of stopping at them "
        "(CHRONICLE_ON_PROJECTION_ERROR=park), in order, with why: the failure, or the earlier "
        "parked event of the same stream an event is held behind. Exit status 2 for an unknown "
        "NAME.",
    )
    parked_parser.add_argument("name", nargs="?", help="one projection (default: every one)")
    retry_parser = projection_commands.add_parser(
        "retry",
        help="replay a read model's parked events, in order",
        description="Replay the events NAME parked, in order (each stream's by version), "
        "after the fault is fixed: those that apply leave the list; one that fails again stays "
        "parked, with the later events of its stream. Exit status 1 if any stay parked, 2 for "
        "an unknown NAME.",
    )
    retry_parser.add_argument("name", help="the projection, e.g. users")
    skip_parser = projection_commands.add_parser(
        "skip",
        help="drop one parked event for good",
        description="Drop the event NAME parked at POSITION: it never takes effect in that read "
        "model. Only that one: later events of its stream held behind it stay parked until "
        "`retry` applies them. Exit status 2 if nothing is parked there.",
    )
    skip_parser.add_argument("name", help="the projection, e.g. users")
    skip_parser.add_argument("position", type=int, help="the parked event's position")
    for sub_parser in (projections_parser,):
        sub_parser.add_argument("--data-dir", type=Path, help="folder of the embedded database")

    commands.add_parser(
        "schema",
        help="print the GraphQL schema (SDL)",
        description="Print the service's GraphQL schema in SDL, as committed in "
        "api/schema.graphql.",
    )

    grants_parser = commands.add_parser(
        "grants",
        help="print (or apply) the grants of a least-privilege serving role",
        description="Print the GRANT statements that let ROLE serve and nothing more: read and "
        "append events (never update, delete or truncate them), write the read models and "
        "checkpoints, rebuild read models through the owner's functions. With --apply, run "
        "them in one transaction as DATABASE_URL's role (the schema owner, after `chronicle "
        "migrate`); applying them again changes nothing. Then serve with DATABASE_URL of ROLE "
        "and CHRONICLE_MIGRATE_ON_START=false.",
    )
    grants_parser.add_argument("--role", required=True, help="the serving role, e.g. chronicle_app")
    grants_parser.add_argument(
        "--apply", action="store_true", help="run the statements as DATABASE_URL's role"
    )

    documents_parser = commands.add_parser(
        "documents",
        help="make the manifest of trusted documents",
        description="Trusted documents (CHRONICLE_TRUSTED_DOCUMENTS).",
    )
    documents_commands = documents_parser.add_subparsers(
        dest="documents_command", required=True, metavar="ACTION"
    )
    hash_parser = documents_commands.add_parser(
        "hash",
        help="print a manifest of trusted documents from .graphql files",
        description="Print a manifest (JSON: each document's sha256 in hex to its text) of the "
        "files given. Each file's whole text is one document, which may hold several operations "
        "and their fragments: a client sends its id as documentId and picks an operation with "
        "operationName. A file that does not parse or does not validate against the service's "
        "schema is refused, and nothing is printed.",
    )
    hash_parser.add_argument("files", nargs="+", type=Path, metavar="FILE")

    token_parser = commands.add_parser(
        "token",
        help="mint a token for local testing",
        description="Print a JWT signed with CHRONICLE_JWT_SECRET (HS256) for the subject and "
        "role given, with CHRONICLE_JWT_ISSUER and CHRONICLE_JWT_AUDIENCE when set. Send it as "
        "the header 'Authorization: Bearer <token>'.",
    )
    token_parser.add_argument("--sub", required=True, help="the subject (who the caller is)")
    token_parser.add_argument("--role", required=True, choices=["admin", "user"])
    token_parser.add_argument(
        "--ttl", default="1h", help="lifetime: seconds, or with s, m, h or d (default 1h)"
    )

    args = parser.parse_args(argv)
    settings = Settings.from_env()
    overrides = {
        name: value
        for name in ("host", "port", "data_dir", "log_level", "workers")
        if (value := getattr(args, name, None)) is not None
    }
    if getattr(args, "no_migrate", False):
        overrides["migrate_on_start"] = False
    settings = dataclasses.replace(settings, **overrides)

    if args.command == "serve":
        serve(settings)
    elif args.command == "migrate":
        _configure_logging(settings)
        asyncio.run(_migrate(settings))
    elif args.command == "projections":
        _configure_logging(settings)
        if args.projections_command == "run":
            asyncio.run(_run_projections(settings))
        elif args.projections_command == "rebuild":
            asyncio.run(_rebuild(settings, args.name))
        elif args.projections_command == "parked":
            if code := asyncio.run(_parked(settings, args.name)):
                raise SystemExit(code)
        elif args.projections_command == "retry":
            if code := asyncio.run(_retry(settings, args.name)):
                raise SystemExit(code)
        elif args.projections_command == "skip":
            if code := asyncio.run(_skip(settings, args.name, args.position)):
                raise SystemExit(code)
        elif args.projections_command == "verify":
            if code := asyncio.run(_verify(settings, args.name)):
                raise SystemExit(code)
        else:
            asyncio.run(_status(settings))
    elif args.command == "schema":
        from api.schema import sdl

        sys.stdout.write(sdl())
    elif args.command == "grants":
        asyncio.run(_grants(settings, args.role, apply=args.apply))
    elif args.command == "token":
        _token(settings, args.sub, args.role, args.ttl)
    elif args.command == "documents":
        _hash_documents(args.files)


async def _grants(settings: Settings, role: str, *, apply: bool) -> None:
    """Print the serving role's grants; with `apply`, run them first as the schema owner."""
    from api.app import all_projectors
    from store.database import create_engine
    from store.grants import GrantRefused, apply_grants, grant_statements

    read_models = [table for projector in all_projectors() for table in projector.tables]
    if not apply:
        print("\n".join(grant_statements(role, read_models)))
        return
    if settings.database_url is None:
        raise SystemExit("chronicle grants --apply: set DATABASE_URL to the schema owner's URL")
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        statements = await apply_grants(engine, role, read_models)
    except GrantRefused as refused:
        raise SystemExit(f"chronicle grants: {refused}") from None
    finally:
        await engine.dispose()
    print("\n".join(statements))
    print(f"-- applied to role {role}", file=sys.stderr)


def _hash_documents(files: list[Path]) -> None:
    """Print the manifest of `files`, each checked against the schema first."""
    import json

    from graphql import GraphQLError, parse, validate

    from api.schema import build_schema
    from api.trusted import manifest_of

    schema = build_schema()._schema
    texts, problems = [], []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
            errors = validate(schema, parse(text))
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f"{file}: {error}")
            continue
        except GraphQLError as error:
            errors = [error]
        problems.extend(f"{file}: {error.message}" for error in errors)
        texts.append(text)
    if problems:
        raise SystemExit("chronicle documents hash:\n" + "\n".join(problems))
    print(json.dumps(manifest_of(texts), indent=2, ensure_ascii=False))


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(ttl: str) -> float:
    ttl = ttl.strip().lower()
    unit = _UNITS.get(ttl[-1:], None)
    number = ttl[:-1] if unit is not None else ttl
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise SystemExit(
            f"chronicle token: --ttl {ttl!r} is not a duration like 90, 15m or 1h"
        ) from None
    if not 0 < seconds <= 366 * 86400:
        raise SystemExit("chronicle token: --ttl must be more than 0 and at most a year")
    return seconds


def _token(settings: Settings, subject: str, role: str, ttl: str) -> None:
    from api.auth import mint

    if not settings.jwt_secret:
        raise SystemExit("chronicle token: set CHRONICLE_JWT_SECRET (the server verifies with it)")
    token = mint(
        settings.jwt_secret,
        subject,
        [role],
        _seconds(ttl),
        iss=settings.jwt_issuer,
        aud=settings.jwt_audience,
    )
    print(token)


if __name__ == "__main__":
    main()
