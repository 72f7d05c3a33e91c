"""Row-by-row differences between a live read-model table and a copy replayed from the log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

SHOWN_KEYS = 20
"""Differing keys listed per table; the count covers them all."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TableDrift:
    """Rows of a live table that differ from the replay, by primary key (`a/b` if composite).

    `missing`: rows the replay has and the live table lacks; `extra`: rows only the live table
    has; `changed`: rows both have with some column different. Together at most `SHOWN_KEYS`
    keys, the first of each kind in key order, taken in turn; `count` (and `counts`, by kind)
    covers every differing row.
    """

    table: str
    count: int
    counts: Mapping[str, int]
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    changed: tuple[str, ...]


async def count_rows(connection: AsyncConnection, table: str) -> int:
    return int((await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def table_drift(
    connection: AsyncConnection, live: str, replayed: str, *, shown: int = SHOWN_KEYS
) -> TableDrift | None:
    """How `live` differs from `replayed` (a copy with the same columns); None if in no row.

    Every column is compared, the generated ones included: each column a projector writes
    comes from an event (its timestamps are the events' `recorded_at`, never the wall clock),
    and the generated `search` follows from those, so no column may differ in a true replay.
    """
    keys = await _primary_key(connection, live)
    columns = await _columns(connection, live)
    joined = " AND ".join(f"l.{k} = r.{k}" for k in keys)
    key_text = ", ".join(f"coalesce(l.{k}, r.{k})::text" for k in keys)
    key_order = ", ".join(f"coalesce(l.{k}, r.{k})" for k in keys)
    left = ", ".join(f"l.{c}" for c in columns)
    right = ", ".join(f"r.{c}" for c in columns)
    rows = (
        await connection.execute(
            text(
                "SELECT kind, key, count(*) OVER (PARTITION BY kind) AS of_kind, "
                "count(*) OVER () AS total, row_number() OVER (PARTITION BY kind "
                "ORDER BY nth) AS nth FROM ("
                f"SELECT CASE WHEN l.{keys[0]} IS NULL THEN 'missing' "
                f"WHEN r.{keys[0]} IS NULL THEN 'extra' ELSE 'changed' END AS kind, "
                f"concat_ws('/', {key_text}) AS key, row_number() OVER (ORDER BY {key_order}) "
                f"AS nth FROM {live} AS l FULL JOIN {replayed} AS r ON {joined} "
                f"WHERE l.{keys[0]} IS NULL OR r.{keys[0]} IS NULL "
                f"OR ROW({left}) IS DISTINCT FROM ROW({right})) AS differing "
                "ORDER BY 5, 1 LIMIT :shown"
            ),
            {"shown": shown},
        )
    ).all()
    if not rows:
        return None
    return TableDrift(
        table=live,
        count=rows[0].total,
        counts={row.kind: row.of_kind for row in rows},
        missing=tuple(row.key for row in rows if row.kind == "missing"),
        extra=tuple(row.key for row in rows if row.kind == "extra"),
        changed=tuple(row.key for row in rows if row.kind == "changed"),
    )


async def _primary_key(connection: AsyncConnection, table: str) -> list[str]:
    names = (
        await connection.execute(
            text(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = CAST(:table AS regclass) AND i.indisprimary "
                "ORDER BY array_position(CAST(i.indkey AS int2[]), a.attnum)"
            ),
            {"table": table},
        )
    ).scalars()
    keys = [_quoted(name) for name in names]
    if not keys:
        raise LookupError(f"{table} has no primary key to compare its rows by")
    return keys


async def _columns(connection: AsyncConnection, table: str) -> list[str]:
    names = (
        await connection.execute(
            text(
                "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:table AS regclass) "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            {"table": table},
        )
    ).scalars()
    return [_quoted(name) for name in names]


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
