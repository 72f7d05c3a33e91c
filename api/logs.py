"""Logs a machine can read: `LOG_FORMAT=json` writes one JSON object a line.

Each line has the time (UTC, ISO 8601), the level, the logger, the message and, when there is
one, the exception's trace; within a request or a websocket connection, its request id and
correlation id (set by api/observe.py); within an OpenTelemetry span, its trace and span ids
(read only if the opentelemetry API is installed). uvicorn's own loggers propagate to the root
logger (the CLI gives uvicorn no log config of its own), so its error and access lines come out
the same way. Plain text, for a terminal, stays the default.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

try:  # the tracing extra is optional: without it, lines carry no trace id
    from opentelemetry import trace as _otel_trace  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - depends on what is installed
    _otel_trace = None  # type: ignore[assignment]

REQUEST_ID: ContextVar[str | None] = ContextVar("chronicle_request_id", default=None)
CORRELATION_ID: ContextVar[str | None] = ContextVar("chronicle_correlation_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")

_ACCESS_FIELDS = ("client", "method", "path", "httpVersion", "status")
"""What uvicorn's access logger passes as its arguments, in order."""


def bind_request(
    request_id: str, correlation_id: str | None
) -> tuple[Token[str | None], Token[str | None]]:
    """Name the request (or websocket connection) in every line logged within it."""
    return REQUEST_ID.set(request_id), CORRELATION_ID.set(correlation_id)


def unbind_request(tokens: tuple[Token[str | None], Token[str | None]]) -> None:
    REQUEST_ID.reset(tokens[0])
    CORRELATION_ID.reset(tokens[1])


def _trace_ids() -> tuple[str, str] | None:
    if _otel_trace is None:
        return None
    context = _otel_trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class JsonFormatter(logging.Formatter):
    """One JSON object a record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (request_id := REQUEST_ID.get()) is not None:
            entry["requestId"] = request_id
        if (correlation_id := CORRELATION_ID.get()) is not None:
            entry["correlationId"] = correlation_id
        if (ids := _trace_ids()) is not None:
            entry["traceId"], entry["spanId"] = ids
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            entry.update(zip(_ACCESS_FIELDS, record.args, strict=False))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text") -> None:
    """The root logger at `level`, writing text or JSON lines to stderr (unless the root
    logger has handlers already: `logging.basicConfig`'s rule)."""
    handler = logging.StreamHandler()
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler])
