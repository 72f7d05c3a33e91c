"""The Postgres event store: one object for the write side and the readers to share.

Each concern lives in a module of its own, the statements beside the functions that run them:
`append.py` (atomic multi-stream append), `streams.py` (one stream's reads), `feed.py` (the
gap-safe feed and the audit log), `snapshots.py`, `commands.py` (idempotency records). This
class only binds them to one engine, one upcaster registry and one doorbell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from store import append, commands, feed, snapshots, streams
from store.doorbell import Doorbell, pg_notifier
from store.events import (
    FEED_START,
    AppendResult,
    CommandIdentity,
    FeedCheckpoint,
    ProcessedCommand,
    RecordedEvent,
    Snapshot,
    StreamAppend,
)
from store.feed import HELD_BACK_RETRY
from store.metrics import APPEND_DURATION, EVENTS_APPENDED
from store.upcasting import Upcasters

__all__ = ["HELD_BACK_RETRY", "EventStore"]


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
        """Write events to one or several streams in one transaction, or nothing at all, and
        ring the doorbell.

        Each stream must be at its `expected` version, else `WrongExpectedVersion`. With a
        `command_id`, the command is recorded with its events and its `identity` (the first
        append's stream is the command's own). A second append with the same id raises
        `CommandAlreadyProcessed` carrying the first run when it is the same command, and
        `CommandIdReused` when it is not.
        """
        with APPEND_DURATION.time():
            result = await append.append_events(
                self.engine,
                self.upcasters,
                appends,
                metadata=metadata,
                command_id=command_id,
                identity=identity,
            )
        for event in result.events:
            EVENTS_APPENDED.labels(event.stream_type).inc()
        self.doorbell.ring(result.position)
        return result

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep the newest snapshot of a stream; an older one never replaces it."""
        await snapshots.save_snapshot(self.engine, snapshot)

    # ------------------------------------------------------------------ reading

    async def stream_version(self, stream_id: str) -> tuple[str, int] | None:
        """The stream's type and current version, or None if it has no events."""
        return await streams.stream_version(self.engine, stream_id)

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        recorded_until: datetime | None = None,
    ) -> list[RecordedEvent]:
        """A stream's events from `from_version` on, in version order, upcast."""
        return await streams.read_stream(
            self.engine,
            self.upcasters,
            stream_id,
            from_version=from_version,
            to_version=to_version,
            recorded_until=recorded_until,
        )

    async def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """The audit log by position: every committed event after `after_position`.

        Positions are handed out before commit, so this order can show an event before one
        with a lower position that commits later. Anything that keeps a checkpoint must read
        `read_feed` instead.
        """
        return await feed.read_all(
            self.engine, self.upcasters, after_position=after_position, limit=limit
        )

    async def read_feed(
        self,
        after: FeedCheckpoint = FEED_START,
        *,
        limit: int = 1000,
        stream_id: str | None = None,
        stream_type: str | None = None,
        types: Sequence[str] | None = None,
        stream_ids: Sequence[str] | None = None,
        hidden_stream_type: str | None = None,
        until: FeedCheckpoint | None = None,
    ) -> list[RecordedEvent]:
        """The gap-safe feed: committed events after `after`, in (transaction id, position) order.

        Only events written by transactions older than every transaction still in flight are
        returned, so an event that commits later can never land behind a checkpoint already
        handed out. Each stream's events come in version order.
        """
        return await feed.read_feed(
            self.engine,
            self.upcasters,
            after,
            limit=limit,
            stream_id=stream_id,
            stream_type=stream_type,
            types=types,
            stream_ids=stream_ids,
            hidden_stream_type=hidden_stream_type,
            until=until,
        )

    async def feed_head(self) -> FeedCheckpoint:
        """The checkpoint of the last event the gap-safe feed can deliver now."""
        return await feed.feed_head(self.engine)

    async def checkpoint_at(self, position: int) -> FeedCheckpoint | None:
        """The feed checkpoint of the event at `position` (0 is the start of the feed)."""
        return await feed.checkpoint_at(self.engine, position)

    async def processed_command(self, command_id: str) -> ProcessedCommand | None:
        """The first result of `command_id`, if a command with that id wrote events."""
        return await commands.processed_command(self.engine, self.upcasters, command_id)

    async def last_position_of(self, stream_id: str) -> int | None:
        """The position of the stream's last event, or None if it has none."""
        return await streams.last_position_of(self.engine, stream_id)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The stream's newest snapshot, or None."""
        return await snapshots.load_snapshot(self.engine, stream_id)
