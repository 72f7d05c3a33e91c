"""The users read models: the user view (with full-text search) and the user summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_never

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.users import DECIDER as users_decider
from domain.users import AgeGroup, Event, UserRegistered, UserUpdated, age_group
from projections.projector import Envelope, Tables, narrowed, type_names

# The read model follows every event of its aggregate: the decider's list, not a copy of it.
HANDLED: tuple[type[Any], ...] = tuple(users_decider.event_types)


class UsersProjector:
    """`users_view`: one row per user. Registrations in a batch go in with one statement;
    updates are guarded by the stream version."""

    name = "users"
    tables: tuple[str, ...] = ("users_view",)
    handles = HANDLED
    event_types = type_names(HANDLED)

    async def apply(
        self, connection: AsyncConnection, events: Sequence[Envelope[Event]], tables: Tables
    ) -> None:
        table = tables["users_view"]
        registrations: list[Envelope[UserRegistered]] = []
        for envelope in events:
            match envelope.event:
                case UserRegistered() as registered:
                    registrations.append(narrowed(envelope, registered))
                case UserUpdated() as updated:
                    # An update may follow a registration of the same batch: write those first.
                    await self._register(connection, registrations, table)
                    registrations = []
                    await self._update(connection, narrowed(envelope, updated), table)
                case other:
                    assert_never(other)
        await self._register(connection, registrations, table)

    async def _register(
        self, connection: AsyncConnection, events: list[Envelope[UserRegistered]], table: str
    ) -> None:
        if not events:
            return
        await connection.execute(
            text(
                f"INSERT INTO {table} (id, email, name, age, age_group, version, created_at, "
                "updated_at) SELECT r.id, r.email, r.name, r.age, r.age_group, r.version, "
                "r.at, r.at "
                "FROM unnest(CAST(:ids AS text[]), CAST(:emails AS text[]), "
                "CAST(:names AS text[]), CAST(:ages AS integer[]), CAST(:groups AS text[]), "
                "CAST(:versions AS integer[]), CAST(:ats AS timestamptz[])) "
                "AS r(id, email, name, age, age_group, version, at) "
                "ON CONFLICT (id) DO NOTHING"
            ),
            {
                "ids": [e.stream_id for e in events],
                "emails": [e.event.email for e in events],
                "names": [e.event.name for e in events],
                "ages": [e.event.age for e in events],
                "groups": [age_group(e.event.age).value for e in events],
                "versions": [e.version for e in events],
                "ats": [e.recorded_at for e in events],
            },
        )

    async def _update(
        self, connection: AsyncConnection, event: Envelope[UserUpdated], table: str
    ) -> None:
        age = event.event.age
        await connection.execute(
            text(
                f"UPDATE {table} SET name = coalesce(:name, name), age = coalesce(:age, age), "
                "age_group = coalesce(:age_group, age_group), version = :version, "
                "updated_at = :at WHERE id = :id AND version < :version"
            ),
            {
                "id": event.stream_id,
                "name": event.event.name,
                "age": age,
                "age_group": None if age is None else age_group(age).value,
                "version": event.version,
                "at": event.recorded_at,
            },
        )


class UserSummaryProjector:
    """`user_summary`: counts kept incrementally; the old age of an update comes from the
    summary's own record of each user's age, so it never depends on another projection."""

    name = "user_summary"
    tables: tuple[str, ...] = ("user_summary", "user_summary_ages")
    handles = HANDLED
    event_types = type_names(HANDLED)

    async def apply(
        self, connection: AsyncConnection, events: Sequence[Envelope[Event]], tables: Tables
    ) -> None:
        for envelope in events:
            match envelope.event:
                case UserRegistered(age=age) | UserUpdated(age=int() as age):
                    await self._count(connection, envelope.stream_id, age, tables)
                case UserUpdated():
                    pass  # the age did not change
                case other:
                    assert_never(other)

    async def _count(
        self, connection: AsyncConnection, user_id: str, new_age: int, tables: Tables
    ) -> None:
        summary, ages = tables["user_summary"], tables["user_summary_ages"]
        old_age = (
            await connection.execute(
                text(f"SELECT age FROM {ages} WHERE id = :id"), {"id": user_id}
            )
        ).scalar()
        await connection.execute(
            text(
                f"INSERT INTO {ages} (id, age) VALUES (:id, :age) "
                "ON CONFLICT (id) DO UPDATE SET age = excluded.age"
            ),
            {"id": user_id, "age": new_age},
        )
        delta = dict.fromkeys(AgeGroup, 0)
        delta[age_group(new_age)] += 1
        if old_age is not None:
            delta[age_group(old_age)] -= 1
        await connection.execute(
            text(
                f"INSERT INTO {summary} AS s (id, total_users, age_sum, teen, adult, senior) "
                "VALUES (1, :users, :age_sum, :teen, :adult, :senior) "
                "ON CONFLICT (id) DO UPDATE SET total_users = s.total_users + :users, "
                "age_sum = s.age_sum + :age_sum, teen = s.teen + :teen, "
                "adult = s.adult + :adult, senior = s.senior + :senior"
            ),
            {
                "users": 0 if old_age is not None else 1,
                "age_sum": new_age - (old_age or 0),
                "teen": delta[AgeGroup.TEEN],
                "adult": delta[AgeGroup.ADULT],
                "senior": delta[AgeGroup.SENIOR],
            },
        )
