"""Health for load balancers and orchestrators: /health/live and /health/ready.

`/health/live` answers 200 while the process serves requests, and touches nothing else: a
liveness probe that failed because the database is down would only get healthy processes
restarted. `/health/ready` answers 200 only when this process can serve correctly: the
database answers within `READY_TIMEOUT`, its schema is at the latest migration this code ships,
and no read model lags more than `CHRONICLE_READY_MAX_LAG` events; else 503. Both say why in a
JSON body. (`/health` stays as it was: liveness with the live feed's counts.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from api.context import Services
from store import migrations

READY_TIMEOUT = 2.0
"""Seconds the database has to answer each of readiness's checks."""


async def live(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    services: Services = request.app.state.services
    checks: dict[str, Any] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            async with services.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except Exception as error:
        checks["database"] = {"ok": False, "error": type(error).__name__}
        return _answer(checks)
    checks["schema"] = await _schema(services)
    checks["projections"] = await _projections(services)
    return _answer(checks)


async def _schema(services: Services) -> dict[str, Any]:
    head = migrations.head_revision()
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            revision = await migrations.current_revision(services.engine)
    except Exception as error:
        return {"ok": False, "head": head, "error": type(error).__name__}
    return {"ok": revision == head, "revision": revision, "head": head}


async def _projections(services: Services) -> dict[str, Any]:
    max_lag = services.settings.ready_max_lag
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            statuses = await services.runner.statuses()
    except Exception as error:
        return {"ok": False, "maxLag": max_lag, "error": type(error).__name__}
    each = {
        s.name: {"ok": s.lag <= max_lag, "status": s.status, "position": s.position, "lag": s.lag}
        for s in statuses
    }
    return {"ok": all(p["ok"] for p in each.values()), "maxLag": max_lag, "readModels": each}


def _answer(checks: dict[str, Any]) -> Response:
    ok = all(check["ok"] for check in checks.values()) and "projections" in checks
    return JSONResponse(
        {"status": "ready" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
    )


def health_routes() -> list[BaseRoute]:
    return [Route("/health/live", live), Route("/health/ready", ready)]
