"""The serving role's grants as `chronicle grants` prints them: events are read and appended,
never changed; read models are written and rebuilt; nothing else is granted."""

from __future__ import annotations

import re

import pytest

from api.app import all_projectors
from store.grants import READ_MODEL, grant_statements, quote, table_privileges

READ_MODELS = [table for projector in all_projectors() for table in projector.tables]


def granted(statements: list[str]) -> dict[str, set[str]]:
    """Table -> privileges, from the GRANT ... ON TABLE statements."""
    found: dict[str, set[str]] = {}
    for statement in statements:
        if match := re.fullmatch(r"GRANT (.+) ON TABLE (\S+) TO \S+;", statement):
            found.setdefault(match[2], set()).update(match[1].split(", "))
    return found


def test_events_are_read_and_appended_only() -> None:
    tables = granted(grant_statements("chronicle_app", READ_MODELS))
    assert tables["events"] == {"SELECT", "INSERT"}
    for table in ("streams", "commands", "snapshots", "fulfilment_state"):
        assert not {"DELETE", "TRUNCATE"} & tables[table], table


def test_every_read_model_table_is_written_and_rebuildable() -> None:
    tables = granted(grant_statements("chronicle_app", READ_MODELS))
    assert READ_MODELS
    for table in READ_MODELS:
        assert tables[table] == set(READ_MODEL), table
    # TRUNCATE marks what a rebuild may replace: read models only.
    assert {t for t, privileges in tables.items() if "TRUNCATE" in privileges} == set(READ_MODELS)


def test_the_statements_revoke_first_then_grant_the_rebuild_functions() -> None:
    statements = grant_statements("chronicle_app", READ_MODELS)
    assert statements[0] == "GRANT USAGE ON SCHEMA public TO chronicle_app;"
    revoked = re.fullmatch(r"REVOKE ALL ON TABLE (.+) FROM chronicle_app;", statements[1])
    assert revoked is not None
    assert revoked[1].split(", ") == list(table_privileges(READ_MODELS))
    assert statements[-1] == (
        "GRANT EXECUTE ON FUNCTION create_rebuild_copy(text), swap_in_rebuild_copy(text) "
        "TO chronicle_app;"
    )
    assert not [s for s in statements if re.search(r"\b(CREATE|ALTER|DROP)\b", s)]


def test_role_names_are_quoted_when_they_must_be() -> None:
    assert quote("chronicle_app") == "chronicle_app"
    assert quote("user") == '"user"'  # a reserved word
    assert quote('App "x"') == '"App ""x"""'
    assert grant_statements('App "x"', [])[-1].endswith(' TO "App ""x""";')


def test_a_store_table_cannot_pass_for_a_read_model() -> None:
    with pytest.raises(ValueError, match="events is no read model"):
        grant_statements("chronicle_app", ["events"])
