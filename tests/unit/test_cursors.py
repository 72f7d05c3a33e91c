"""Cursors are opaque: anything but a cursor we made is InvalidPage, never another error;
search text is bounded before it becomes a tsquery."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.pagination import (
    MAX_SEARCH_LENGTH,
    MAX_SEARCH_WORDS,
    InvalidPage,
    InvalidSearch,
    decode_cursor,
    encode_cursor,
    prefix_query,
)

SEEDED = settings(max_examples=300, derandomize=True, deadline=None, database=None)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.datetimes(timezones=st.timezones()).map(datetime.isoformat),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def wrap(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def decodes_or_is_refused(cursor: str) -> None:
    try:
        created_at, row_id = decode_cursor(cursor)
    except InvalidPage as error:
        assert str(error) == "invalid cursor"
        return
    assert created_at.tzinfo is not None
    created_at.astimezone(UTC)
    assert isinstance(row_id, str) and "\x00" not in row_id
    assert encode_cursor(created_at, row_id) == cursor


@SEEDED
@given(st.datetimes(timezones=st.just(UTC)), st.text().filter(lambda t: "\x00" not in t))
def test_a_cursor_we_made_decodes_to_its_key(created_at: datetime, row_id: str) -> None:
    cursor = encode_cursor(created_at, row_id)
    if len(cursor) <= 512 and not any(0xD800 <= ord(c) <= 0xDFFF for c in row_id):
        assert decode_cursor(cursor) == (created_at, row_id)


@SEEDED
@given(json_values)
def test_any_json_in_a_cursor_decodes_or_is_refused(key: Any) -> None:
    decodes_or_is_refused(wrap(key))


@SEEDED
@given(st.text())
def test_any_text_as_a_cursor_decodes_or_is_refused(cursor: str) -> None:
    decodes_or_is_refused(cursor)


@SEEDED
@given(st.binary())
def test_any_bytes_in_a_cursor_decode_or_are_refused(raw: bytes) -> None:
    decodes_or_is_refused(base64.urlsafe_b64encode(raw).decode())


@pytest.mark.parametrize(
    "key",
    [
        ["0001-01-01T00:00:00+14:00", "x"],  # before the year 1 in UTC
        ["9999-12-31T23:59:59-14:00", "x"],  # after the year 9999 in UTC
        ["0000-01-01T00:00:00+00:00", "x"],
        ["99999-01-01T00:00:00+00:00", "x"],
        ["2026-01-01T00:00:00", "x"],  # no time zone
        ["2026-01-01T00:00:00+00:00", "a\x00b"],
        ["2026-01-01T00:00:00+00:00", ["nested"]],
        [["2026-01-01T00:00:00+00:00"], "x"],
        ["2026-01-01T00:00:00+00:00", 10**4000],
        {"created_at": "2026-01-01T00:00:00+00:00", "id": "x"},
        ["2026-01-01T00:00:00+00:00", "x", "extra"],
    ],
)
def test_odd_cursors_are_refused(key: Any) -> None:
    try:
        cursor = wrap(key)
    except ValueError:  # an int too long for json.dumps: send its digits raw
        cursor = base64.urlsafe_b64encode(f'["x", {"9" * 5000}]'.encode()).decode()
    with pytest.raises(InvalidPage, match="invalid cursor"):
        decode_cursor(cursor)


@pytest.mark.parametrize(
    "cursor",
    [
        base64.urlsafe_b64encode(b"[" * 100_000).decode(),
        "%%%",
        "not base64!",
        "WyJ4Il0",  # padding missing
        "é" * 10,
        "A" * 100_000,
    ],
)
def test_malformed_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidPage, match="invalid cursor"):
        decode_cursor(cursor)


def test_a_cursor_in_another_time_zone_is_refused() -> None:
    moment = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    assert decode_cursor(encode_cursor(moment, "x")) == (moment, "x")  # ours, if ever made
    with pytest.raises(InvalidPage):
        decode_cursor(wrap(["2026-01-01T00:00+02:00", "x"]))  # not the form we write


def test_search_is_bounded_in_length_and_words() -> None:
    assert prefix_query("Ada love_lace") == "ada:* & love:* & lace:*"
    assert prefix_query(" ".join(["w"] * MAX_SEARCH_WORDS)) is not None
    with pytest.raises(InvalidSearch, match=f"{MAX_SEARCH_WORDS} words"):
        prefix_query(" ".join(["w"] * (MAX_SEARCH_WORDS + 1)))
    with pytest.raises(InvalidSearch, match=f"{MAX_SEARCH_LENGTH} characters"):
        prefix_query("a" * (MAX_SEARCH_LENGTH + 1))
    with pytest.raises(InvalidSearch):
        prefix_query("ada " * 18_700)
