"""Settings, read once from the environment; nothing else reads it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _path(value: str) -> Path | None:
    return Path(value.strip()) if value.strip() else None


def _otlp_traces(env: Mapping[str, str]) -> bool:
    """Whether OpenTelemetry's standard variables ask for traces over OTLP: `OTEL_TRACES_EXPORTER`
    names `otlp`, or, that variable unset, an OTLP endpoint is given; never with
    `OTEL_SDK_DISABLED=true`. Other exporters (console, zipkin) are not offered."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if exporters := env.get("OTEL_TRACES_EXPORTER", "").strip().lower():
        return "otlp" in {name.strip() for name in exporters.split(",")}
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def _count(name: str, value: str) -> int:
    if not value.strip().isascii() or not value.strip().isdigit():
        raise ValueError(f"{name} must be a whole number of 0 or more, got {value!r}")
    return int(value)


def _on_projection_error(value: str) -> bool:
    """True to park, False to stop (the default)."""
    chosen = value.strip().lower() or "stop"
    if chosen not in {"stop", "park"}:
        raise ValueError(f"CHRONICLE_ON_PROJECTION_ERROR must be stop or park, got {value!r}")
    return chosen == "park"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    database_url: str | None = None
    """PostgreSQL to use; None starts an embedded server under `data_dir`."""
    data_dir: Path = Path(".chronicle")
    broadcast_url: str | None = None
    """Where rings travel between processes: None for the database itself (LISTEN/NOTIFY),
    `memory://` for one process only, or `redis://host:port`."""
    safety_poll: float = 1.0
    """Seconds between reads of the feed when no ring arrives (rings can be lost)."""
    subscriber_buffer: int = 1_000
    """Events a subscriber may fall behind before it is told to resume with `after`."""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    """Processes `chronicle serve` runs on the port."""
    log_level: str = "info"
    tracing: bool = False
    """Export OpenTelemetry traces over OTLP, as the standard `OTEL_*` variables ask (the SDK
    reads the rest of them itself; see api/tracing.py)."""
    migrate_on_start: bool = True
    run_projections: bool = True
    """Run the projection runner in the API process (one per database is elected)."""
    projection_batch_size: int = 500
    projection_retries: int = 3
    """`CHRONICLE_PROJECTION_RETRIES`: how many more times a projector tries an event it failed
    on, after 0.1 s, then twice as long each time, before it stops or parks it."""
    park_failed_events: bool = False
    """`CHRONICLE_ON_PROJECTION_ERROR=park`: a read model parks an event it still fails on and
    goes on (projections/parking.py); `stop` (the default) stops it there."""
    stale_read_timeout: float = 5.0
    """How long a query given `minPosition` waits for its projection, in seconds."""
    max_query_depth: int = 10
    max_query_tokens: int = 2_000
    max_aliases: int = 30
    max_body_bytes: int = 256 * 1024
    """The largest request body, query string or websocket message accepted, in bytes: larger
    bodies are answered 413, longer query strings 414, larger websocket messages close 1009."""
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    """Origins allowed to open websockets from a browser (same-origin is always allowed)."""
    ws_init_timeout: float = 10.0
    """Seconds a graphql-transport-ws client has to send `connection_init` (else close 4408)."""
    ws_keep_alive: float = 15.0
    """Seconds between `ka` keep-alive messages on legacy graphql-ws connections."""
    ws_compression: bool = False
    """Negotiate permessage-deflate with websocket clients that offer it (browsers all do). Off:
    a compressed connection holds some 40 KB more of zlib state (about 80% more per idle
    subscriber), each frame is compressed for its connection alone, and live frames are
    small."""
    jwt_secret: str | None = None
    """Verify callers' tokens as HS256 with this secret."""
    jwt_jwks_url: str | None = None
    """Verify callers' tokens as RS256/ES256 with the keys published at this URL."""
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_roles_claim: str = "roles"
    auth_off: bool = False
    """`CHRONICLE_AUTH=off`: serve open (no JWT setting) on a non-loopback address too."""
    trusted_documents: Path | None = None
    """A manifest of trusted documents (sha256 -> text): callers who are not admins may run
    only these (see api/trusted.py)."""
    introspection_public: bool = False
    """`CHRONICLE_INTROSPECTION=public`: anyone may introspect; otherwise admins only (every
    caller is one in open mode)."""
    graphiql: bool | None = None
    """Serve GraphiQL at /graphql; None: in open mode only."""
    rate_limit: str | None = None
    """Each caller's mutations, and apart from them its subscription starts, as a `limits` rate
    (`20/second`, `100/minute`); None limits nothing (see api/rate_limits.py)."""
    rate_limit_prefix: str = "chronicle"
    """The prefix of the rate counters' keys in Redis."""
    log_format: str = "text"
    """`LOG_FORMAT`: `text` for a terminal, `json` for one JSON object a line (api/logs.py)."""
    metrics: bool = True
    """`CHRONICLE_METRICS=off` serves no /metrics (api/metrics.py)."""
    prometheus_multiproc_dir: Path | None = None
    """`PROMETHEUS_MULTIPROC_DIR`: the folder several serving processes share their metrics
    through (prometheus_client's multiprocess mode, which reads the variable itself)."""
    ready_max_lag: int = 1_000
    """`CHRONICLE_READY_MAX_LAG`: the most events a read model may lag while /health/ready
    answers 200."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()
        origins = env.get("CHRONICLE_ALLOWED_ORIGINS", "")
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            data_dir=Path(env.get("CHRONICLE_DATA_DIR", str(defaults.data_dir))),
            broadcast_url=env.get("BROADCAST_URL") or None,
            safety_poll=float(env.get("CHRONICLE_SAFETY_POLL", defaults.safety_poll)),
            subscriber_buffer=int(
                env.get("CHRONICLE_SUBSCRIBER_BUFFER", defaults.subscriber_buffer)
            ),
            host=env.get("CHRONICLE_HOST", defaults.host),
            port=int(env.get("CHRONICLE_PORT", defaults.port)),
            workers=_count("CHRONICLE_WORKERS", env.get("CHRONICLE_WORKERS", "1")),
            log_level=env.get("LOG_LEVEL", defaults.log_level).lower(),
            tracing=_otlp_traces(env),
            migrate_on_start=_flag(env.get("CHRONICLE_MIGRATE_ON_START", "true")),
            allowed_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            run_projections=_flag(env.get("CHRONICLE_RUN_PROJECTIONS", "true")),
            projection_batch_size=int(
                env.get("CHRONICLE_PROJECTION_BATCH_SIZE", defaults.projection_batch_size)
            ),
            projection_retries=_count(
                "CHRONICLE_PROJECTION_RETRIES",
                env.get("CHRONICLE_PROJECTION_RETRIES", str(defaults.projection_retries)),
            ),
            park_failed_events=_on_projection_error(env.get("CHRONICLE_ON_PROJECTION_ERROR", "")),
            stale_read_timeout=float(
                env.get("CHRONICLE_STALE_READ_TIMEOUT", defaults.stale_read_timeout)
            ),
            max_body_bytes=int(env.get("CHRONICLE_MAX_BODY_BYTES", defaults.max_body_bytes)),
            ws_init_timeout=float(env.get("CHRONICLE_WS_INIT_TIMEOUT", defaults.ws_init_timeout)),
            ws_keep_alive=float(env.get("CHRONICLE_WS_KEEP_ALIVE", defaults.ws_keep_alive)),
            ws_compression=_flag(env.get("CHRONICLE_WS_COMPRESSION", "false")),
            jwt_secret=env.get("CHRONICLE_JWT_SECRET") or None,
            jwt_jwks_url=env.get("CHRONICLE_JWT_JWKS_URL") or None,
            jwt_issuer=env.get("CHRONICLE_JWT_ISSUER") or None,
            jwt_audience=env.get("CHRONICLE_JWT_AUDIENCE") or None,
            jwt_roles_claim=env.get("CHRONICLE_JWT_ROLES_CLAIM") or defaults.jwt_roles_claim,
            auth_off=env.get("CHRONICLE_AUTH", "").strip().lower() == "off",
            trusted_documents=_path(env.get("CHRONICLE_TRUSTED_DOCUMENTS", "")),
            introspection_public=env.get("CHRONICLE_INTROSPECTION", "").strip().lower() == "public",
            graphiql=_flag(env["CHRONICLE_GRAPHIQL"]) if env.get("CHRONICLE_GRAPHIQL") else None,
            rate_limit=env.get("CHRONICLE_RATE_LIMIT", "").strip() or None,
            rate_limit_prefix=env.get("CHRONICLE_RATE_LIMIT_PREFIX") or defaults.rate_limit_prefix,
            log_format="json" if env.get("LOG_FORMAT", "").strip().lower() == "json" else "text",
            metrics=env.get("CHRONICLE_METRICS", "on").strip().lower() not in {"off", "false", "0"},
            prometheus_multiproc_dir=_path(env.get("PROMETHEUS_MULTIPROC_DIR", "")),
            ready_max_lag=int(env.get("CHRONICLE_READY_MAX_LAG", defaults.ready_max_lag)),
        )

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"
