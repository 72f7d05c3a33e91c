"""Appending: one command's events, to one or several streams, in one transaction or not at all.

Appends take a transaction-scoped advisory lock on every stream they write, in a fixed order,
before their first write. Postgres hands out a transaction id at a transaction's first write,
so a stream's later versions always come from transactions with larger ids: the feed, ordered
by (transaction id, position), delivers each stream's events in version order.

This is the one place that talks to asyncpg directly rather than through SQLAlchemy's `text()`:
the append is the write hot path, and one prepared statement run in its own implicit
transaction costs a single round trip (SQLAlchemy's transaction would add BEGIN and COMMIT).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from store.commands import processed_command
from store.errors import (
    CommandAlreadyProcessed,
    CommandIdReused,
    DuplicateEventId,
    WrongExpectedVersion,
)
from store.event_rows import to_json
from store.events import (
    AppendResult,
    CommandIdentity,
    ExpectedVersion,
    RecordedEvent,
    StreamAppend,
    StreamState,
)
from store.streams import stream_version
from store.upcasting import Upcasters

# See `append_to_streams` in migrations 0001 and 0006 for what it guarantees.
_APPEND = """
    SELECT position, version, transaction_id, recorded_at
    FROM append_to_streams($1::text[], $2::text[], $3::integer[], $4::uuid[], $5::integer[],
                           $6::integer[], $7::text[], $8::integer[], $9::text[]::jsonb[],
                           $10::text::jsonb, $11::text, $12::text, $13::text)
"""
_WRONG_EXPECTED_VERSION = "CH409"
_EXPECTED_CODES = {StreamState.ANY: -1, StreamState.NO_STREAM: 0, StreamState.STREAM_EXISTS: -2}


async def append_events(
    engine: AsyncEngine,
    upcasters: Upcasters,
    appends: Sequence[StreamAppend],
    *,
    metadata: Mapping[str, Any] | None,
    command_id: str | None,
    identity: CommandIdentity | None,
) -> AppendResult:
    """Write `appends` atomically; see `EventStore.append` for the refusals."""
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
        [to_json(event.data) for *_, event in rows],
        to_json(metadata or {}),
        command_id,
        None if identity is None else identity.command_type,
        None if identity is None else identity.fingerprint,
    )
    try:
        async with engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            written = await driver.fetch(_APPEND, *arguments)
    except asyncpg.PostgresError as error:
        # Explained once the connection is back in the pool: the explanation reads with a
        # connection of its own, and waiting for a second one while holding the first
        # deadlocks a pool that many racing appends have emptied.
        raise await _refusal(engine, upcasters, error, appends, command_id, identity) from error
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
    return AppendResult(events=recorded, versions=versions)


async def _refusal(
    engine: AsyncEngine,
    upcasters: Upcasters,
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
                found = await stream_version(engine, append.stream_id)
                if found is not None:
                    return WrongExpectedVersion(append.stream_id, append.expected, found[1])
    if constraint == "commands_pkey" and command_id is not None:
        # A concurrent append with the same id committed first: the same command gets its
        # result, a different one is refused.
        prior = await processed_command(engine, upcasters, command_id)
        if prior is not None and identity is not None and not prior.is_run_of(identity):
            return CommandIdReused(command_id)
        return CommandAlreadyProcessed(command_id, prior)
    if constraint == "events_event_id_key":
        return DuplicateEventId(str(error.detail))
    return error  # type: ignore[no-any-return]


def _expected_code(expected: ExpectedVersion) -> int:
    if isinstance(expected, StreamState):
        return _EXPECTED_CODES[expected]
    if expected < 0:
        raise ValueError(f"expected version must be >= 0, got {expected}")
    return expected
