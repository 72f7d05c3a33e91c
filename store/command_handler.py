"""The one command handler: load, decide, append, and retry on a lost race.

For any registered decider: load the stream (latest snapshot, then the events after it, upcast),
fold `evolve`, call `decide`, and append the new events with the version that was read as the
expected version, together with a claim on every unique key the command reserves. When another
writer got there first and the client did not pin `expected_version`, it reloads and decides
again, a bounded number of times with jittered backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from domain.access import SERVICE, Actor
from domain.decider import Claim, Decider, KeyClaimed
from domain.errors import DomainError, Duplicate, NotFound
from domain.text import quoted
from store.errors import CommandAlreadyProcessed, CommandIdReused, WrongExpectedVersion
from store.event_store import EventStore
from store.events import (
    CommandIdentity,
    ProcessedCommand,
    RecordedEvent,
    Snapshot,
    StreamAppend,
    StreamState,
    fingerprint,
)
from store.metrics import command_measured
from store.serialization import CLAIM_STREAM_TYPE, Aggregates, decode_state, encode_state
from store.tracing import append_span, command_span, record_trace_context

C = TypeVar("C")
S = TypeVar("S")
E = TypeVar("E")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandContext:
    """Who sent a command and why; stored as every event's metadata.

    `command_id` is the client's idempotency key: the same command sent again with an id
    already processed returns its first result and writes nothing; a different command under
    that id (another type, target stream or input) is refused with `CommandIdReused`.
    """

    command_id: str | None = None
    fingerprint: str | None = None
    """A digest of the client's input (`store.events.fingerprint`), when the command holds
    values the server filled in (a catalog price looked up, a generated id) that may differ
    between two sends of the same request. None: the command itself is fingerprinted."""
    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str | None = None
    roles: tuple[str, ...] = ()
    """The actor's roles, as its verified token gave them."""
    caller: Actor = SERVICE
    """Who the decider's `authorize` judges: the verified caller for a client's command; the
    service itself (the default) for the service's own processes and tools."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandOutcome:
    stream_id: str
    version: int
    """The stream's version after the command."""
    position: int
    """The last event the command wrote, or the stream's last if it wrote none."""
    events: Sequence[RecordedEvent]
    replayed: bool = False
    """True when this is the stored result of an earlier run of the same command id."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded(Generic[S]):
    state: S
    version: int
    snapshot_version: int
    events_read: int
    """How many events were read from the store after the snapshot."""
    foreign: bool = False
    """The stream belongs to an aggregate of another type: there is none of this type here,
    and `state` is the initial one."""


class CommandHandler:
    """Runs any registered decider's commands against its stream in the store.

    Each call is typed by its decider: `handle(orders.DECIDER, ...)` takes an orders command
    and `load` returns an order's state, so a command of another aggregate does not type-check.
    A decider missing from `aggregates` raises `UnregisteredDecider`.
    """

    def __init__(
        self, store: EventStore, aggregates: Aggregates, *, max_attempts: int = 30
    ) -> None:
        self.store = store
        self.aggregates = aggregates
        self.max_attempts = max_attempts

    async def load(
        self,
        decider: Decider[C, S, E],
        stream_id: str,
        *,
        to_version: int | None = None,
        as_of: datetime | None = None,
    ) -> Loaded[S]:
        """The aggregate's state at its latest version, at `to_version`, or as of a time."""
        registration = self.aggregates.registration(decider)
        state, version = decider.initial_state, 0
        if registration.snapshot_every and as_of is None:
            snapshot = await self.store.load_snapshot(stream_id)
            if snapshot is not None and snapshot.stream_type != decider.stream_type:
                return Loaded(
                    state=state, version=0, snapshot_version=0, events_read=0, foreign=True
                )
            if (
                snapshot is not None
                and snapshot.state_schema == registration.state_schema
                and (to_version is None or snapshot.version <= to_version)
            ):
                state = decode_state(snapshot.state, decider.state_type)
                version = snapshot.version
        snapshot_version = version
        events = await self.store.read_stream(
            stream_id, from_version=version + 1, to_version=to_version, recorded_until=as_of
        )
        if any(event.stream_type != decider.stream_type for event in events):
            # An id of another aggregate (a product's id given as an order's): its events mean
            # nothing to this decider, whose `evolve` must never see them.
            return Loaded(state=state, version=0, snapshot_version=0, events_read=0, foreign=True)
        for event in events:
            state = decider.evolve(state, self.aggregates.decode(event))
            version = event.version
        return Loaded(
            state=state, version=version, snapshot_version=snapshot_version, events_read=len(events)
        )

    async def handle(
        self,
        decider: Decider[C, S, E],
        stream_id: str,
        command: C,
        *,
        expected_version: int | None = None,
        context: CommandContext | None = None,
    ) -> CommandOutcome:
        """Decide `command` against the stream and append what it decides, exactly once.

        Raises the decider's `DomainError`s, `Duplicate` when a claimed key is taken,
        `CommandIdReused` when the command id was used for a different command, and
        `WrongExpectedVersion` when `expected_version` is stale (or, without it, when the
        retries run out). Each run is counted and timed (store/metrics.py).
        """
        with (
            command_span(type(command).__name__, decider.stream_type, stream_id) as traced,
            command_measured(type(command).__name__) as measured,
        ):
            outcome = await self._handle(
                decider, stream_id, command, expected_version=expected_version, context=context
            )
            measured.ran(replayed=outcome.replayed)
            traced.ran(
                replayed=outcome.replayed, events=len(outcome.events), position=outcome.position
            )
            return outcome

    async def _handle(
        self,
        decider: Decider[C, S, E],
        stream_id: str,
        command: C,
        *,
        expected_version: int | None,
        context: CommandContext | None,
    ) -> CommandOutcome:
        registration = self.aggregates.registration(decider)
        context = context or CommandContext()
        identity = CommandIdentity(
            command_type=type(command).__name__,
            target=stream_id,
            fingerprint=context.fingerprint or fingerprint(command),
        )
        if context.command_id is not None:
            prior = await self.store.processed_command(context.command_id)
            if prior is not None:
                return _replayed(prior, identity, context.actor)
        metadata: dict[str, object] = {
            "commandId": context.command_id or str(uuid.uuid4()),
            "correlationId": context.correlation_id or context.command_id,
            "causationId": context.causation_id,
            "actor": context.actor,
        }
        if context.roles:
            metadata["roles"] = list(context.roles)
        record_trace_context(metadata)  # the command's span: what the events cause continues it
        for attempt in range(1, self.max_attempts + 1):
            loaded = await self.load(decider, stream_id)
            if loaded.foreign:
                raise NotFound(f"no {decider.stream_type} has the id {quoted(stream_id)}")
            try:
                if expected_version is not None and loaded.version != expected_version:
                    raise WrongExpectedVersion(stream_id, expected_version, loaded.version)
                decider.authorize(command, loaded.state, context.caller)
                new_events = decider.decide(command, loaded.state)
            except (DomainError, WrongExpectedVersion):
                # A refusal (or nothing to do, below) may come of a concurrent run under this
                # id having just done it: that run answers, and no refusal names its stream.
                if prior := await self._processed(context.command_id):
                    return _replayed(prior, identity, context.actor)
                raise
            if not new_events:
                if prior := await self._processed(context.command_id):
                    return _replayed(prior, identity, context.actor)
                position = await self.store.last_position_of(stream_id)
                return CommandOutcome(
                    stream_id=stream_id, version=loaded.version, position=position or 0, events=()
                )
            appends = [
                StreamAppend(
                    stream_id=stream_id,
                    stream_type=decider.stream_type,
                    expected=loaded.version or StreamState.NO_STREAM,
                    events=[self.aggregates.encode(event) for event in new_events],
                ),
                *(self._claim(claim) for claim in decider.claims(command)),
            ]
            try:
                with append_span(appends):
                    result = await self.store.append(
                        appends, metadata=metadata, command_id=context.command_id, identity=identity
                    )
            except CommandAlreadyProcessed as done:
                # A concurrent run of the same command id won; its result is ours.
                prior = done.prior or await self.store.processed_command(done.command_id)
                assert prior is not None
                return _replayed(prior, identity, context.actor)
            except WrongExpectedVersion as conflict:
                # The writer that moved the stream (or took the key) may be a concurrent run
                # under the same command id, new streams being named after it.
                if prior := await self._processed(context.command_id):
                    return _replayed(prior, identity, context.actor)
                if conflict.stream_id != stream_id:
                    claim = next(
                        c for c in decider.claims(command) if c.stream_id == conflict.stream_id
                    )
                    raise Duplicate(
                        claim.taken or f"{claim.scope} {quoted(claim.key)} is already taken"
                    ) from conflict
                if expected_version is not None or attempt == self.max_attempts:
                    raise
                await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
                continue
            version = result.versions[stream_id]
            every = registration.snapshot_every
            if every and version // every > loaded.version // every:
                await self._snapshot(
                    decider,
                    stream_id,
                    decider.fold(loaded.state, new_events),
                    version,
                    registration.state_schema,
                )
            return CommandOutcome(
                stream_id=stream_id, version=version, position=result.position, events=result.events
            )
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _processed(self, command_id: str | None) -> ProcessedCommand | None:
        return None if command_id is None else await self.store.processed_command(command_id)

    def _claim(self, claim: Claim) -> StreamAppend:
        event = KeyClaimed(scope=claim.scope, key=claim.key, owner_id=claim.owner_id)
        return StreamAppend(
            stream_id=claim.stream_id,
            stream_type=CLAIM_STREAM_TYPE,
            expected=StreamState.NO_STREAM,
            events=[self.aggregates.encode(event)],
        )

    async def _snapshot(
        self,
        decider: Decider[C, S, E],
        stream_id: str,
        state: S,
        version: int,
        state_schema: int,
    ) -> None:
        try:
            await self.store.save_snapshot(
                Snapshot(
                    stream_id=stream_id,
                    stream_type=decider.stream_type,
                    version=version,
                    state=encode_state(state),
                    state_schema=state_schema,
                )
            )
        except Exception:
            # A snapshot is a cache: the command has committed, loading just reads more events.
            log.warning("could not snapshot %s at version %s", stream_id, version, exc_info=True)


def _replayed(
    prior: ProcessedCommand, identity: CommandIdentity, actor: str | None
) -> CommandOutcome:
    """The first result of the command sent again; a different command, or the same one sent
    by another caller, may not have it (a commandId is no key to another's results)."""
    sent_by = prior.events[0].metadata.get("actor") if prior.events else actor
    if sent_by != actor:
        raise CommandIdReused(prior.command_id)
    if not prior.is_run_of(identity):
        # The caller's own first command: it may be told which one that was.
        raise CommandIdReused(prior.command_id, first=prior.command_type, stream_id=prior.stream_id)
    return CommandOutcome(
        stream_id=prior.stream_id,
        version=prior.version,
        position=max(event.position for event in prior.events),
        events=prior.events,
        replayed=True,
    )
