"""How an event row is selected and decoded: shared by every statement that reads `events`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from store.events import RecordedEvent
from store.upcasting import Upcasters

EVENT_COLUMNS = """
    position, event_id, stream_id, stream_type, version, event_type, schema_version,
    data::text AS data_json, metadata::text AS metadata_json, transaction_id::text AS tx,
    recorded_at
"""
"""The select list of an event. Casts are read out under names of their own (`tx`,
`data_json`), never a column's: a bare `ORDER BY transaction_id` would then sort the text
("1000000" before "999999"). Statements order by the `xid8` column itself."""


def decode_event(upcasters: Upcasters, row: Mapping[Any, Any]) -> RecordedEvent:
    """A row selected with `EVENT_COLUMNS`, upcast to its event type's current schema."""
    schema_version, data = upcasters.upcast(
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


def to_json(value: Any) -> str:
    """`value` as JSON text, for a `CAST(... AS jsonb)` parameter."""
    return msgspec.json.encode(value).decode()
