"""The exported schema: committed as api/schema.graphql, and never breaking the contract."""

from __future__ import annotations

from pathlib import Path

from graphql import build_schema, find_breaking_changes

from api.schema import sdl

ROOT = Path(__file__).resolve().parents[2]
# A copy of the public contract, kept in the repository so the suite passes in a fresh clone of
# it alone; the before-stop hook checks the code against the shared original.
CONTRACT = ROOT / "tests" / "contract" / "API.graphql"


def test_the_committed_schema_matches_the_code() -> None:
    committed = (ROOT / "api" / "schema.graphql").read_text()
    assert committed == sdl(), "run `chronicle schema > api/schema.graphql` and commit it"


def test_the_schema_has_no_breaking_change_against_the_contract() -> None:
    assert CONTRACT.exists(), f"the public contract is expected at {CONTRACT}"
    contract = build_schema(CONTRACT.read_text())
    exported = build_schema(sdl())
    breaking = [
        change.description
        for change in find_breaking_changes(contract, exported)
        # Parts of the contract still to be built show up as removals; anything else breaks it.
        if "was removed" not in change.description
    ]
    assert breaking == []


def test_what_is_built_of_the_contract_matches_it_exactly() -> None:
    """Every type, field and argument of the contract that exists in the code has its type."""
    contract = build_schema(CONTRACT.read_text())
    exported = build_schema(sdl())
    compared = 0
    for name, theirs in contract.type_map.items():
        ours = exported.type_map.get(name)
        if name.startswith("__") or ours is None or not hasattr(theirs, "fields"):
            continue
        for field_name, field in theirs.fields.items():
            if field_name not in ours.fields:  # type: ignore[attr-defined]
                continue
            mine = ours.fields[field_name]  # type: ignore[attr-defined]
            assert str(mine.type) == str(field.type), (name, field_name)
            for arg, spec in getattr(field, "args", {}).items():
                assert str(mine.args[arg].type) == str(spec.type), (name, field_name, arg)
            compared += 1
    assert compared > 100
