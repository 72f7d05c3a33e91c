"""The Postgres event store: atomic multi-stream append, stream reads, the gap-safe feed.

Appends take a transaction-scoped advisory lock on every stream they write, in a fixed order,
before their first write. Postgres hands out a transaction id at a transaction's first write,
so a stream's later versions always come from transactions with larger ids: the feed, ordered
by (transaction id, position), delivers each stream's events in version order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.errors import CommandAlreadyProcessed, WrongExpectedVersion
from store.events import (
    FEED_START,
    AppendResult,
    ExpectedVersion,
    FeedCheckpoint,
    NewEvent,
    ProcessedCommand,
    RecordedEvent,
    Snapshot,
    StreamAppend,
    StreamState,
)
from store.upcasting import Upcasters

RING_CHANNEL = "chronicle_events"
"""The `pg_notify` channel an append rings on commit; its payload is the last position."""

_COLUMNS = """
    position, event_id, stream_id, stream_type, version, event_type, schema_version,
    data::text AS data, metadata::text AS metadata, transaction_id::text AS transaction_id,
    recorded_at
"""

_LOCK_STREAMS = text(
    "SELECT pg_advisory_xact_lock(hashtextextended(s, 0)) "
    "FROM unnest(CAST(:stream_ids AS text[])) AS s ORDER BY s"
)

_CREATE_STREAM = text(
    "INSERT INTO streams (stream_id, stream_type, version) VALUES (:stream_id, :stream_type, :n) "
    "ON CONFLICT (stream_id) DO NOTHING RETURNING version"
)
_CREATE_OR_EXTEND_STREAM = text(
    "INSERT INTO streams AS s (stream_id, stream_type, version) "
    "VALUES (:stream_id, :stream_type, :n) "
    "ON CONFLICT (stream_id) DO UPDATE SET version = s.version + :n, updated_at = now() "
    "RETURNING version"
)
_EXTEND_STREAM = text(
    "UPDATE streams SET version = version + :n, updated_at = now() "
    "WHERE stream_id = :stream_id AND (CAST(:expected AS integer) IS NULL OR version = :expected) "
    "RETURNING version"
)

# One statement writes the events, records the command and rings the doorbell; NOTIFY is
# delivered only if the transaction commits.
_INSERT_EVENTS = text(
    f"""
    WITH written AS (
        INSERT INTO events (event_id, stream_id, stream_type, version, event_type,
                            schema_version, data, metadata)
        SELECT e.event_id, e.stream_id, e.stream_type, e.version, e.event_type,
               e.schema_version, e.data::jsonb, CAST(:metadata AS jsonb)
        FROM unnest(CAST(:event_ids AS uuid[]), CAST(:stream_ids AS text[]),
                    CAST(:stream_types AS text[]), CAST(:versions AS integer[]),
                    CAST(:event_types AS text[]), CAST(:schema_versions AS integer[]),
                    CAST(:datas AS text[]))
             WITH ORDINALITY AS e(event_id, stream_id, stream_type, version, event_type,
                                  schema_version, data, ord)
        ORDER BY e.ord
        RETURNING {_COLUMNS}
    ),
    command AS (
        INSERT INTO commands (command_id, stream_id, version, positions)
        SELECT CAST(:command_id AS text), CAST(:result_stream AS text),
               CAST(:result_version AS integer), array_agg(position ORDER BY position)
        FROM written
        WHERE CAST(:command_id AS text) IS NOT NULL
    )
    SELECT written.*
    FROM written
    CROSS JOIN (SELECT pg_notify('{RING_CHANNEL}', (SELECT max(position) FROM written)::text))
        AS ring
    ORDER BY position
    """
)

_FEED = text(
    f"""
    SELECT {_COLUMNS} FROM events
    WHERE (transaction_id, position) > (CAST(:tx AS text)::xid8, :position)
      AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
      AND (CAST(:stream_id AS text) IS NULL OR stream_id = :stream_id)
      AND (CAST(:stream_type AS text) IS NULL OR stream_type = :stream_type)
      AND (CAST(:types AS text[]) IS NULL OR event_type = ANY(CAST(:types AS text[])))
    ORDER BY transaction_id, position
    LIMIT :limit
    """
)


class EventStore:
    """Append to and read from the event log. Safe to share between tasks."""

    def __init__(self, engine: AsyncEngine, upcasters: Upcasters | None = None) -> None:
        self.engine = engine
        self.upcasters = upcasters or Upcasters()

    # ------------------------------------------------------------------ writing

    async def append(
        self,
        appends: Sequence[StreamAppend],
        *,
        metadata: Mapping[str, Any] | None = None,
        command_id: str | None = None,
    ) -> AppendResult:
        """Write events to one or several streams in one transaction, or nothing at all.

        Each stream must be at its `expected` version, else `WrongExpectedVersion`. With a
        `command_id`, the command is recorded with its events (the first append's stream is
        the command's own); a second append with the same id raises `CommandAlreadyProcessed`.
        """
        appends = [a for a in appends if a.events]
        if not appends:
            raise ValueError("an append needs at least one event")
        try:
            async with self.engine.begin() as connection:
                return await self._append(connection, appends, metadata or {}, command_id)
        except IntegrityError as error:
            constraint = _constraint_of(error)
            if constraint == "commands_pkey" and command_id is not None:
                raise CommandAlreadyProcessed(command_id) from error
            if constraint == "events_stream_version_key":
                stream = appends[0]
                raise WrongExpectedVersion(stream.stream_id, stream.expected, None) from error
            raise

    async def _append(
        self,
        connection: AsyncConnection,
        appends: Sequence[StreamAppend],
        metadata: Mapping[str, Any],
        command_id: str | None,
    ) -> AppendResult:
        stream_ids = [a.stream_id for a in appends]
        if len(set(stream_ids)) != len(stream_ids):
            raise ValueError("each stream may appear once in an append")
        await connection.execute(_LOCK_STREAMS, {"stream_ids": stream_ids})
        versions: dict[str, int] = {}
        rows: list[tuple[NewEvent, StreamAppend, int]] = []
        for append in appends:
            new_version = await _advance_stream(connection, append)
            versions[append.stream_id] = new_version
            first = new_version - len(append.events) + 1
            rows.extend((event, append, first + i) for i, event in enumerate(append.events))
        result = await connection.execute(
            _INSERT_EVENTS,
            {
                "event_ids": [event.event_id for event, _, _ in rows],
                "stream_ids": [append.stream_id for _, append, _ in rows],
                "stream_types": [append.stream_type for _, append, _ in rows],
                "versions": [version for _, _, version in rows],
                "event_types": [event.event_type for event, _, _ in rows],
                "schema_versions": [event.schema_version for event, _, _ in rows],
                "datas": [_encode(event.data) for event, _, _ in rows],
                "metadata": _encode(metadata),
                "command_id": command_id,
                "result_stream": appends[0].stream_id,
                "result_version": versions[appends[0].stream_id],
            },
        )
        return AppendResult(
            events=[self._recorded(row) for row in result.mappings()], versions=versions
        )

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep the newest snapshot of a stream; an older one never replaces it."""
        async with self.engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO snapshots AS s (stream_id, stream_type, version, state, "
                    "state_schema) VALUES (:stream_id, :stream_type, :version, "
                    "CAST(:state AS jsonb), :state_schema) "
                    "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, "
                    "state = excluded.state, state_schema = excluded.state_schema, "
                    "recorded_at = now() WHERE s.version < excluded.version"
                ),
                {
                    "stream_id": snapshot.stream_id,
                    "stream_type": snapshot.stream_type,
                    "version": snapshot.version,
                    "state": _encode(snapshot.state),
                    "state_schema": snapshot.state_schema,
                },
            )

    # ------------------------------------------------------------------ reading

    async def stream_version(self, stream_id: str) -> tuple[str, int] | None:
        """The stream's type and current version, or None if it has no events."""
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT stream_type, version FROM streams WHERE stream_id = :s"),
                    {"s": stream_id},
                )
            ).first()
        return None if row is None else (row.stream_type, row.version)

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        recorded_until: datetime | None = None,
    ) -> list[RecordedEvent]:
        """A stream's events from `from_version` on, in version order, upcast."""
        async with self.engine.connect() as connection:
            result = await connection.execute(
                text(
                    f"SELECT {_COLUMNS} FROM events WHERE stream_id = :stream_id "
                    "AND version >= :from_version "
                    "AND (CAST(:to_version AS integer) IS NULL OR version <= :to_version) "
                    "AND (CAST(:until AS timestamptz) IS NULL OR recorded_at <= :until) "
                    "ORDER BY version"
                ),
                {
                    "stream_id": stream_id,
                    "from_version": from_version,
                    "to_version": to_version,
                    "until": recorded_until,
                },
            )
            return [self._recorded(row) for row in result.mappings()]

    async def read_all(
        self, *, after_position: int = 0, limit: int = 1000
    ) -> list[RecordedEvent]:
        """The audit log by position: every committed event after `after_position`.

        Positions are handed out before commit, so this order can show an event before one
        with a lower position that commits later. Anything that keeps a checkpoint must read
        `read_feed` instead.
        """
        async with self.engine.connect() as connection:
            result = await connection.execute(
                text(
                    f"SELECT {_COLUMNS} FROM events WHERE position > :after "
                    "ORDER BY position LIMIT :limit"
                ),
                {"after": after_position, "limit": limit},
            )
            return [self._recorded(row) for row in result.mappings()]

    async def read_feed(
        self,
        after: FeedCheckpoint = FEED_START,
        *,
        limit: int = 1000,
        stream_id: str | None = None,
        stream_type: str | None = None,
        types: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        """The gap-safe feed: committed events after `after`, in (transaction id, position) order.

        Only events written by transactions older than every transaction still in flight are
        returned, so an event that commits later can never land behind a checkpoint already
        handed out. Each stream's events come in version order.
        """
        async with self.engine.connect() as connection:
            result = await connection.execute(
                _FEED,
                {
                    "tx": str(after.transaction_id),
                    "position": after.position,
                    "stream_id": stream_id,
                    "stream_type": stream_type,
                    "types": list(types) if types is not None else None,
                    "limit": limit,
                },
            )
            return [self._recorded(row) for row in result.mappings()]

    async def checkpoint_at(self, position: int) -> FeedCheckpoint | None:
        """The feed checkpoint of the event at `position` (0 is the start of the feed)."""
        if position == 0:
            return FEED_START
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT transaction_id::text AS tx FROM events WHERE position = :p"),
                    {"p": position},
                )
            ).first()
        return None if row is None else FeedCheckpoint(int(row.tx), position)

    async def processed_command(self, command_id: str) -> ProcessedCommand | None:
        """The first result of `command_id`, if a command with that id wrote events."""
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT stream_id, version, positions FROM commands "
                        "WHERE command_id = :command_id"
                    ),
                    {"command_id": command_id},
                )
            ).first()
            if row is None:
                return None
            result = await connection.execute(
                text(
                    f"SELECT {_COLUMNS} FROM events "
                    "WHERE position = ANY(CAST(:positions AS bigint[])) ORDER BY position"
                ),
                {"positions": list(row.positions)},
            )
            events = [self._recorded(r) for r in result.mappings()]
        return ProcessedCommand(
            command_id=command_id, stream_id=row.stream_id, version=row.version, events=events
        )

    async def last_position_of(self, stream_id: str) -> int | None:
        async with self.engine.connect() as connection:
            return (
                await connection.execute(
                    text(
                        "SELECT position FROM events WHERE stream_id = :s "
                        "ORDER BY version DESC LIMIT 1"
                    ),
                    {"s": stream_id},
                )
            ).scalar()

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT stream_id, stream_type, version, state::text AS state, "
                        "state_schema FROM snapshots WHERE stream_id = :s"
                    ),
                    {"s": stream_id},
                )
            ).first()
        if row is None:
            return None
        return Snapshot(
            stream_id=row.stream_id,
            stream_type=row.stream_type,
            version=row.version,
            state=msgspec.json.decode(row.state),
            state_schema=row.state_schema,
        )

    def _recorded(self, row: Mapping[str, Any]) -> RecordedEvent:
        schema_version, data = self.upcasters.upcast(
            row["event_type"], row["schema_version"], msgspec.json.decode(row["data"])
        )
        return RecordedEvent(
            position=row["position"],
            event_id=row["event_id"],
            stream_id=row["stream_id"],
            stream_type=row["stream_type"],
            version=row["version"],
            event_type=row["event_type"],
            schema_version=schema_version,
            data=data,
            metadata=msgspec.json.decode(row["metadata"]),
            transaction_id=int(row["transaction_id"]),
            recorded_at=row["recorded_at"],
        )


async def _advance_stream(connection: AsyncConnection, append: StreamAppend) -> int:
    """Move the stream's version on by the number of events, if it is where expected."""
    n = len(append.events)
    expected = append.expected
    params: dict[str, Any] = {"stream_id": append.stream_id, "stream_type": append.stream_type}
    if expected is StreamState.NO_STREAM or expected == 0:
        new_version = (await connection.execute(_CREATE_STREAM, {**params, "n": n})).scalar()
    elif expected is StreamState.ANY:
        new_version = (
            await connection.execute(_CREATE_OR_EXTEND_STREAM, {**params, "n": n})
        ).scalar()
    else:
        exact = None if expected is StreamState.STREAM_EXISTS else expected
        new_version = (
            await connection.execute(
                _EXTEND_STREAM, {"stream_id": append.stream_id, "n": n, "expected": exact}
            )
        ).scalar()
    if new_version is None:
        actual = (
            await connection.execute(
                text("SELECT version FROM streams WHERE stream_id = :s"), {"s": append.stream_id}
            )
        ).scalar()
        raise WrongExpectedVersion(append.stream_id, expected, actual)
    return int(new_version)


def _encode(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _constraint_of(error: IntegrityError) -> str | None:
    cause = error.orig.__cause__ if error.orig is not None else None
    return getattr(cause, "constraint_name", None)
