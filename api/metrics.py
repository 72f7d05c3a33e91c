"""Prometheus metrics at GET /metrics.

Three kinds, all under `chronicle_`:

- counted where they happen, in the layer that sees them: commands and appends
  (store/metrics.py), live subscriptions cut off (projections/metrics.py), HTTP requests and
  websockets (api/observe.py), doorbell reconnects (api/broadcast.py);
- this process's state, set from the services when scraped (and every second in multiprocess
  mode, so that another process's scrape reads it fresh): live subscribers and their buffered
  events, whether this process leads the projection runner, database connections in use;
- each read model's position, lag (in events and in seconds), status and rebuild progress,
  read from the database when scraped: the same whichever process answers.

With PROMETHEUS_MULTIPROC_DIR set (several `chronicle serve` processes behind one address),
prometheus_client keeps the values in files in that folder and any process's /metrics sums
them: counters and histograms over every process that ever ran (empty the folder when the
deployment starts), this process's gauges over the processes still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.context import Services
from api.settings import Settings
from projections.checkpoints import ProjectionStatus
from projections.lag import FeedLag, feed_lag
from projections.rebuild import rebuild_checkpoint

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter(
    "chronicle_http_requests",
    "HTTP requests answered, by method, route and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "chronicle_http_request_duration_seconds",
    "Time to answer an HTTP request (a subscription streamed over HTTP: its whole life).",
    ["method", "route"],
)
WEBSOCKET_CONNECTIONS = Gauge(
    "chronicle_websocket_connections", "Open websocket connections.", multiprocess_mode="livesum"
)
LIVE_SUBSCRIBERS = Gauge(
    "chronicle_live_subscribers",
    "Subscriptions following the live feed.",
    multiprocess_mode="livesum",
)
LIVE_BUFFERED_EVENTS = Gauge(
    "chronicle_live_buffered_events",
    "Events waiting in live subscribers' buffers.",
    multiprocess_mode="livesum",
)
RUNNER_LEADER = Gauge(
    "chronicle_runner_leader",
    "1 if this process holds the projection runner's election lock (summed over processes in "
    "multiprocess mode: the number of leaders among them, 1 or 0).",
    multiprocess_mode="livesum",
)
DB_POOL_IN_USE = Gauge(
    "chronicle_db_pool_connections_in_use",
    "Database connections checked out of the pool.",
    multiprocess_mode="livesum",
)
DOORBELL_RECONNECTS = Counter(
    "chronicle_doorbell_reconnects",
    "Times the doorbell listener (BROADCAST_URL or LISTEN/NOTIFY) lost its line and reconnected.",
)

STATUSES = ("running", "rebuilding", "failed")
"""The statuses always shown (0 or 1) for each read model; any other it is in is shown too."""


def set_process_gauges(services: Services) -> None:
    """This process's state, read off its services."""
    LIVE_SUBSCRIBERS.set(services.live.subscriber_count)
    LIVE_BUFFERED_EVENTS.set(services.live.buffered)
    RUNNER_LEADER.set(1 if services.runner.is_leader else 0)
    checkedout = getattr(services.engine.sync_engine.pool, "checkedout", None)
    DB_POOL_IN_USE.set(checkedout() if checkedout is not None else 0)


@dataclass(frozen=True, slots=True)
class ProjectionsSeen:
    statuses: Sequence[ProjectionStatus]
    """Every checkpoint's, rebuilds' included."""
    lag: FeedLag


class ProjectionCollector(Collector):
    """Each read model's gauges, from what the last scrape read from the database."""

    def __init__(self) -> None:
        self.seen: ProjectionsSeen | None = None

    def collect(self) -> Iterable[Metric]:
        if self.seen is None:
            return []
        labels = ["projection"]
        position = GaugeMetricFamily(
            "chronicle_projection_position",
            "The position of the last event the projection applied.",
            labels=labels,
        )
        lag_events = GaugeMetricFamily(
            "chronicle_projection_lag_events",
            "Events in the log beyond the projection's checkpoint.",
            labels=labels,
        )
        lag_seconds = GaugeMetricFamily(
            "chronicle_projection_lag_seconds",
            "Age of the oldest event the projection has not applied; 0 when caught up.",
            labels=labels,
        )
        status = GaugeMetricFamily(
            "chronicle_projection_status",
            "1 for the status the projection is in (running, rebuilding, failed, ...).",
            labels=["projection", "status"],
        )
        progress = GaugeMetricFamily(
            "chronicle_projection_rebuild_progress_ratio",
            "How far a rebuild under way has replayed the log, by position (0 to 1); only "
            "while it runs.",
            labels=labels,
        )
        parked = GaugeMetricFamily(
            "chronicle_projection_parked_events",
            "Events the projection parked instead of stopping at them "
            "(CHRONICLE_ON_PROJECTION_ERROR=park), waiting for a retry or a skip.",
            labels=labels,
        )
        by_name = {s.name: s for s in self.seen.statuses}
        head = self.seen.lag.head
        for each in self.seen.statuses:
            if each.name.endswith(":rebuild"):
                continue
            name = [each.name]
            position.add_metric(name, each.position)
            lag_events.add_metric(name, each.lag)
            lag_seconds.add_metric(name, self.seen.lag.seconds.get(each.name, 0.0))
            parked.add_metric(name, each.parked)
            for state in dict.fromkeys((*STATUSES, each.status)):
                status.add_metric([each.name, state], 1 if state == each.status else 0)
            if (rebuild := by_name.get(rebuild_checkpoint(each.name))) is not None:
                progress.add_metric(name, min(1.0, rebuild.position / head) if head else 1.0)
        return [position, lag_events, lag_seconds, status, progress, parked]


class _ThisProcess(Collector):
    """The default registry's metrics (this process's values), inside a registry of the app's."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class MetricsExporter:
    def __init__(self, settings: Settings) -> None:
        self.projections = ProjectionCollector()
        self.registry = CollectorRegistry()
        if settings.prometheus_multiproc_dir is not None:
            multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
                self.registry, path=str(settings.prometheus_multiproc_dir)
            )
        else:
            self.registry.register(_ThisProcess())
        self.registry.register(self.projections)

    async def scrape(self, services: Services) -> bytes:
        """Read what is read when scraped, then render every metric in the text format."""
        set_process_gauges(services)
        try:
            statuses = await services.runner.statuses(include_rebuilds=True)
            lag = await feed_lag(services.engine)
        except Exception:
            log.warning("metrics: could not read the projections' checkpoints", exc_info=True)
            self.projections.seen = None
        else:
            self.projections.seen = ProjectionsSeen(statuses, lag)
        return generate_latest(self.registry)


def metrics_routes(settings: Settings) -> list[BaseRoute]:
    """GET /metrics, unless CHRONICLE_METRICS=off. Unauthenticated, as scrapers are: keep it
    off the public network (bind, network policy, or a proxy that does not route it)."""
    if not settings.metrics:
        return []
    exporter = MetricsExporter(settings)

    async def metrics(request: Request) -> Response:
        body = await exporter.scrape(request.app.state.services)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return [Route("/metrics", metrics, methods=["GET"])]


@contextlib.asynccontextmanager
async def process_gauges(services: Services) -> AsyncIterator[None]:
    """In multiprocess mode, keep this process's gauges fresh for the others' scrapes, and take
    them away when it stops."""
    folder = services.settings.prometheus_multiproc_dir
    if folder is None:
        yield
        return
    stop = asyncio.Event()

    async def keep_fresh() -> None:
        while not stop.is_set():
            set_process_gauges(services)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    task = asyncio.create_task(keep_fresh(), name="metrics gauges")
    try:
        yield
    finally:
        stop.set()
        await task
        multiprocess.mark_process_dead(os.getpid(), str(folder))  # type: ignore[no-untyped-call]
