"""Projectors read domain events, never stored payloads (issue 12, item 1): a field read by
name from `data` turns a renamed field into a runtime KeyError that stops a projector."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.app import all_projectors, build_aggregates
from projections.projector import type_names

PROJECTIONS = Path(__file__).resolve().parents[2] / "projections"
DECODER = "projector.py"
"""The one module that turns stored payloads into domain events."""


@pytest.mark.parametrize(
    "module", sorted(p.name for p in PROJECTIONS.glob("*.py") if p.name != DECODER)
)
def test_no_projection_reads_a_stored_payload(module: str) -> None:
    source = (PROJECTIONS / module).read_text()
    assert not re.search(r"\.data\s*(\[|\.get\()", source), module


def test_every_projector_names_the_types_of_the_classes_it_handles() -> None:
    for projector in all_projectors():
        assert projector.handles
        assert projector.event_types == type_names(projector.handles), projector.name


def test_every_class_a_projector_handles_is_a_registered_event_type() -> None:
    registered = {cls for r in build_aggregates().registrations for cls in r.decider.event_types}
    for projector in all_projectors():
        assert set(projector.handles) <= registered, projector.name
