"""The exported schema: committed as api/schema.graphql, and never breaking the contract."""

from __future__ import annotations

from pathlib import Path

from graphql import build_schema, find_breaking_changes

from api.schema import sdl

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT.parent / "shared" / "API.graphql"


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
    contract = build_schema(CONTRACT.read_text())
    exported = build_schema(sdl())
    for type_name in (
        "Event",
        "CommandResult",
        "AggregateState",
        "RegisterUserInput",
        "UpdateUserInput",
    ):
        ours, theirs = exported.type_map[type_name], contract.type_map[type_name]
        for field_name, field in theirs.fields.items():  # type: ignore[attr-defined]
            assert str(ours.fields[field_name].type) == str(field.type), (type_name, field_name)  # type: ignore[attr-defined]
    for root, fields in (
        ("Mutation", ("registerUser", "updateUser")),
        ("Query", ("events", "aggregateState")),
    ):
        ours_root, theirs_root = exported.type_map[root], contract.type_map[root]
        for name in fields:
            ours_field = ours_root.fields[name]  # type: ignore[attr-defined]
            theirs_field = theirs_root.fields[name]  # type: ignore[attr-defined]
            assert str(ours_field.type) == str(theirs_field.type)
            for arg, spec in theirs_field.args.items():
                assert str(ours_field.args[arg].type) == str(spec.type), (root, name, arg)
