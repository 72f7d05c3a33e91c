"""Whose budget a request spends, and how the counters answer: in memory, no I/O."""

from __future__ import annotations

import logging

import pytest
from limits.aio.storage import MemoryStorage
from limits.errors import StorageError

from api.auth import ANONYMOUS, OPEN_MODE, Identity
from api.rate_limits import RateLimits, caller_key, parse_rate
from api.settings import Settings


def test_a_signed_in_caller_spends_its_subjects_budget_from_any_address() -> None:
    ada = Identity(subject="ada", roles=frozenset({"user"}))
    assert caller_key(ada, "10.0.0.1") == caller_key(ada, "10.0.0.2") == "subject:ada"
    admin = Identity(subject="root", roles=frozenset({"admin"}))
    assert caller_key(admin, "10.0.0.1") == "subject:root"


def test_an_anonymous_caller_spends_its_addresss_budget() -> None:
    assert caller_key(ANONYMOUS, "10.0.0.1") == "address:10.0.0.1"
    assert caller_key(ANONYMOUS, "10.0.0.2") != caller_key(ANONYMOUS, "10.0.0.1")
    assert caller_key(ANONYMOUS, None) == "address:unknown"


def test_in_open_mode_every_caller_spends_its_addresss_budget() -> None:
    assert caller_key(OPEN_MODE, "127.0.0.1") == "address:127.0.0.1"


def test_a_subject_named_like_an_address_does_not_share_the_addresss_budget() -> None:
    lookalike = Identity(subject="127.0.0.1", roles=frozenset({"user"}))
    assert caller_key(lookalike, "10.0.0.1") != caller_key(ANONYMOUS, "127.0.0.1")


def test_the_rate_is_written_as_limits_writes_it() -> None:
    assert (parse_rate("5/minute").amount, parse_rate("5/minute").get_expiry()) == (5, 60)
    assert parse_rate("20 per second").get_expiry() == 1
    for wrong in ("fast", "0/second", "5/fortnight", ""):
        with pytest.raises(ValueError, match="CHRONICLE_RATE_LIMIT"):
            parse_rate(wrong)


def test_no_rate_limits_nothing() -> None:
    assert RateLimits.from_settings(Settings()) is None
    assert RateLimits.from_settings(Settings.from_env({"CHRONICLE_RATE_LIMIT": " "})) is None
    limits = RateLimits.from_settings(Settings.from_env({"CHRONICLE_RATE_LIMIT": "3/minute"}))
    assert limits is not None and limits.rate.amount == 3


async def test_each_caller_and_each_kind_has_a_budget_of_its_own() -> None:
    limits = RateLimits(parse_rate("2/minute"), MemoryStorage())
    assert [await limits.retry_after("mutations", "subject:ada") for _ in range(2)] == [None] * 2
    wait = await limits.retry_after("mutations", "subject:ada")
    assert wait is not None and 0 < wait <= 60
    assert await limits.retry_after("mutations", "subject:bob") is None
    assert await limits.retry_after("subscription starts", "subject:ada") is None


class Unreachable(MemoryStorage):
    """Counters that cannot be reached, as when Redis is down."""

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        raise StorageError(ConnectionError("Connection refused"))


async def test_counters_out_of_reach_let_requests_through_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits = RateLimits(parse_rate("1/minute"), Unreachable())
    with caplog.at_level(logging.WARNING, "chronicle.rate_limits"):
        assert [await limits.retry_after("mutations", "subject:ada") for _ in range(5)] == [
            None
        ] * 5
    warnings = [r.getMessage() for r in caplog.records if r.name == "chronicle.rate_limits"]
    assert len(warnings) == 1 and "Connection refused" in warnings[0], warnings
