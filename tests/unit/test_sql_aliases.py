"""No SQL statement names a cast after the column it casts.

`SELECT transaction_id::text AS transaction_id ... ORDER BY transaction_id` sorts the text:
PostgreSQL resolves a bare ORDER BY (or GROUP BY) name to the output column first. That once
sorted "1000000" before "999999" and made read models skip events for good, so the pattern is
refused everywhere, whether or not the statement orders by it today.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHADOWING = re.compile(r"\b([a-z_]+)\s*::\s*[a-z0-9_]+(?:\[\])?\s+AS\s+\1\b", re.IGNORECASE)
CAST_SHADOWING = re.compile(
    r"CAST\s*\(\s*([a-z_]+)\s+AS\s+[a-z0-9_]+(?:\[\])?\s*\)\s+AS\s+\1\b", re.IGNORECASE
)


def shadowing_aliases(source: str) -> list[str]:
    return [m.group(0) for p in (SHADOWING, CAST_SHADOWING) for m in p.finditer(source)]


def test_the_pattern_is_recognised() -> None:
    assert shadowing_aliases("SELECT transaction_id::text AS transaction_id FROM events")
    assert shadowing_aliases("SELECT CAST(position AS text) AS position")
    assert not shadowing_aliases("SELECT transaction_id::text AS tx FROM events")
    assert not shadowing_aliases("SELECT data::text AS data_json")


def test_no_statement_names_a_cast_after_its_column() -> None:
    found = {
        str(path.relative_to(ROOT)): hits
        for folder in ("api", "store", "projections", "alembic", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (hits := shadowing_aliases(path.read_text()))
    }
    assert found == {}
