"""The write side's Prometheus metrics: commands run and events appended.

Defined once per process in prometheus_client's default registry (its multiprocess mode, when
PROMETHEUS_MULTIPROC_DIR is set, shares them between processes through files). Labels are
bounded: a command's type, an outcome from a fixed set, a stream type; never an id.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from prometheus_client import Counter, Histogram

COMMANDS = Counter(
    "chronicle_commands",
    "Commands run, by command type and outcome (ok, replayed, or the refusal's code in lower "
    "case; error for a fault).",
    ["command", "outcome"],
)
COMMAND_DURATION = Histogram(
    "chronicle_command_duration_seconds",
    "Time to run a command: load, decide, append, retries included.",
    ["command"],
)
EVENTS_APPENDED = Counter(
    "chronicle_events_appended", "Events appended to the store, by stream type.", ["stream_type"]
)
APPEND_DURATION = Histogram(
    "chronicle_append_duration_seconds", "Time of one atomic append (one or several streams)."
)


class CommandOutcomeLabel:
    """Where a measured command records how it ended; a fault unless told otherwise."""

    __slots__ = ("outcome",)

    def __init__(self) -> None:
        self.outcome = "error"

    def ran(self, *, replayed: bool) -> None:
        self.outcome = "replayed" if replayed else "ok"


@contextlib.contextmanager
def command_measured(command: str) -> Iterator[CommandOutcomeLabel]:
    """Count and time one command of type `command`. A refusal that carries a client code
    (domain, store and projection errors do) is counted under that code in lower case."""
    label = CommandOutcomeLabel()
    started = time.perf_counter()
    try:
        yield label
    except Exception as error:
        code = getattr(type(error), "code", None)
        if isinstance(code, str):
            label.outcome = code.lower()
        raise
    finally:
        COMMAND_DURATION.labels(command).observe(time.perf_counter() - started)
        COMMANDS.labels(command, label.outcome).inc()
