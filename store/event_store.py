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

import asyncpg
import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from store.doorbell import Doorbell, pg_notifier
from store.errors import (
    CommandAlreadyProcessed,
    CommandIdReused,
    DuplicateEventId,
    WrongExpectedVersion,
)
from store.events import (
    FEED_START,
    AppendResult,
    CommandIdentity,
    ExpectedVersion,
    FeedCheckpoint,
    ProcessedCommand,
    RecordedEvent,
    Snapshot,
    StreamAppend,
    StreamState,
)
from store.upcasting import Upcasters

# Casts are read out under names of their own (`tx`, `data_json`), never a column's: a bare
# `ORDER BY transaction_id` would then sort the text ("1000000" before "999999").
_COLUMNS = """
    position, event_id, stream_id, stream_type, version, event_type, schema_version,
    data::text AS data_json, metadata::text AS metadata_json, transaction_id::text AS tx,
    recorded_at
"""

# One round trip: see `append_to_streams` in migrations 0001 and 0006 for what it guarantees.
_APPEND = """
    SELECT position, version, transaction_id, recorded_at
    FROM append_to_streams($1::text[], $2::text[], $3::integer[], $4::uuid[], $5::integer[],
                           $6::integer[], $7::text[], $8::integer[], $9::text[]::jsonb[],
                           $10::text::jsonb, $11::text, $12::text, $13::text)
"""
_WRONG_EXPECTED_VERSION = "CH409"
_EXPECTED_CODES = {StreamState.ANY: -1, StreamState.NO_STREAM: 0, StreamState.STREAM_EXISTS: -2}

_FEED = text(
    f"""
    SELECT {_COLUMNS} FROM events
    WHERE (transaction_id, position) > (CAST(:tx AS text)::xid8, :position)
      AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
      AND (CAST(:stream_id AS text) IS NULL OR stream_id = :stream_id)
      AND (CAST(:stream_type AS text) IS NULL OR stream_type = :stream_type)
      AND (CAST(:types AS text[]) IS NULL OR event_type = ANY(CAST(:types AS text[])))
    ORDER BY events.transaction_id, events.position
    LIMIT :limit
    """
)


HELD_BACK_RETRY = 0.02
"""Seconds before a reader looks again for an event it was told of but could not read yet:
a transaction still in flight holds it back (the feed is gap-safe), and holds are short."""


class EventStore:
    """Append to and read from the event log. Safe to share between tasks."""

    def __init__(
        self,
        engine: AsyncEngine,
        upcasters: Upcasters | None = None,
        doorbell: Doorbell | None = None,
    ) -> None:
        self.engine = engine
        self.upcasters = upcasters or Upcasters()
        self.doorbell = doorbell or Doorbell(pg_notifier(engine))

    async def close(self) -> None:
        """Wait for the last ring to go out."""
        await self.doorbell.close()

    # ------------------------------------------------------------------ writing

    async def append(
        self,
        appends: Sequence[StreamAppend],
        *,
        metadata: Mapping[str, Any] | None = None,
        command_id: str | None = None,
        identity: CommandIdentity | None = None,
    ) -> AppendResult:
        """Write events to one or several streams in one transaction, or nothing at all.

        Each stream must be at its `expected` version, else `WrongExpectedVersion`. With a
        `command_id`, the command is recorded with its events and its `identity` (the first
        append's stream is the command's own). A second append with the same id raises
        `CommandAlreadyProcessed` carrying the first run when it is the same command, and
        `CommandIdReused` when it is not.
        """
        appends = [a for a in appends if a.events]
        if not appends:
            raise ValueError("an append needs at least one event")
        stream_ids = [a.stream_id for a in appends]
        if len(set(stream_ids)) != len(stream_ids):
            raise ValueError("each stream may appear once in an append")
        rows = [
            (index, nth, append, event)
            for index, append in enumerate(appends, 1)
            for nth, event in enumerate(append.events, 1)
        ]
        arguments = (
            stream_ids,
            [a.stream_type for a in appends],
            [_expected_code(a.expected) for a in appends],
            [event.event_id for *_, event in rows],
            [index for index, *_ in rows],
            [nth for _, nth, *_ in rows],
            [event.event_type for *_, event in rows],
            [event.schema_version for *_, event in rows],
            [_encode(event.data) for *_, event in rows],
            _encode(metadata or {}),
            command_id,
            None if identity is None else identity.command_type,
            None if identity is None else identity.fingerprint,
        )
        # The hot path talks to asyncpg directly (on a pooled connection): one statement, run
        # in its own transaction, costs one round trip.
        async with self.engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            try:
                written = await driver.fetch(_APPEND, *arguments)
            except asyncpg.PostgresError as error:
                raise await self._append_error(error, appends, command_id, identity) from error
        recorded = [
            RecordedEvent(
                position=row["position"],
                event_id=event.event_id,
                stream_id=append.stream_id,
                stream_type=append.stream_type,
                version=row["version"],
                event_type=event.event_type,
                schema_version=event.schema_version,
                data=dict(event.data),
                metadata=dict(metadata or {}),
                transaction_id=int(row["transaction_id"]),
                recorded_at=row["recorded_at"],
            )
            for (_, _, append, event), row in zip(rows, written, strict=True)
        ]
        versions = {
            append.stream_id: max(e.version for e in recorded if e.stream_id == append.stream_id)
            for append in appends
        }
        result = AppendResult(events=recorded, versions=versions)
        self.doorbell.ring(result.position)
        return result

    async def _append_error(
        self,
        error: asyncpg.PostgresError,
        appends: Sequence[StreamAppend],
        command_id: str | None,
        identity: CommandIdentity | None,
    ) -> Exception:
        """The store's refusal for a failed append, or the error itself if unexpected."""
        if error.sqlstate == _WRONG_EXPECTED_VERSION:
            detail = msgspec.json.decode(error.detail or "{}")
            expected = next(a.expected for a in appends if a.stream_id == detail["stream_id"])
            return WrongExpectedVersion(detail["stream_id"], expected, detail["actual"])
        constraint = getattr(error, "constraint_name", None)
        if constraint == "streams_pkey":
            # A stream expected not to exist does: say which, and at what version.
            for append in appends:
                if _expected_code(append.expected) == 0:
                    found = await self.stream_version(append.stream_id)
                    if found is not None:
                        return WrongExpectedVersion(append.stream_id, append.expected, found[1])
        if constraint == "commands_pkey" and command_id is not None:
            # A concurrent append with the same id committed first: the same command gets its
            # result, a different one is refused.
            prior = await self.processed_command(command_id)
            if prior is not None and identity is not None and not prior.is_run_of(identity):
                return CommandIdReused(command_id)
            return CommandAlreadyProcessed(command_id, prior)
        if constraint == "events_event_id_key":
            return DuplicateEventId(str(error.detail))
        return error  # type: ignore[no-any-return]

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

    async def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
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

    async def feed_head(self) -> FeedCheckpoint:
        """The checkpoint of the last event the gap-safe feed can deliver now."""
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT transaction_id::text AS tx, position FROM events "
                        "WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) "
                        "ORDER BY transaction_id DESC, position DESC LIMIT 1"
                    )
                )
            ).first()
        return FEED_START if row is None else FeedCheckpoint(int(row.tx), row.position)

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
                        "SELECT stream_id, version, positions, command_type, fingerprint "
                        "FROM commands "
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
            command_id=command_id,
            stream_id=row.stream_id,
            version=row.version,
            events=events,
            command_type=row.command_type,
            fingerprint=row.fingerprint,
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
                        "SELECT stream_id, stream_type, version, state::text AS state_json, "
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
            state=msgspec.json.decode(row.state_json),
            state_schema=row.state_schema,
        )

    def _recorded(self, row: Mapping[Any, Any]) -> RecordedEvent:
        schema_version, data = self.upcasters.upcast(
            row["event_type"], row["schema_version"], msgspec.json.decode(row["data_json"])
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
            metadata=msgspec.json.decode(row["metadata_json"]),
            transaction_id=int(row["tx"]),
            recorded_at=row["recorded_at"],
        )


def _expected_code(expected: ExpectedVersion) -> int:
    if isinstance(expected, StreamState):
        return _EXPECTED_CODES[expected]
    if expected < 0:
        raise ValueError(f"expected version must be >= 0, got {expected}")
    return expected


def _encode(value: Any) -> str:
    return msgspec.json.encode(value).decode()
