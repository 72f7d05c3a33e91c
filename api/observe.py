"""Every HTTP request and websocket connection, named and counted.

A pure ASGI middleware: it gives each request (or websocket connection) a request id, the
client's `X-Request-Id` when it is a plausible one, else a fresh one, and echoes it on the
response; it binds that id and the client's `X-Correlation-Id` for the logs (api/logs.py); and
it counts requests by method, route and status, times them, and counts open websockets
(api/metrics.py). Labels stay bounded: a method outside the usual few is `other`, and a path
is reduced to the route it falls under, never the path itself.
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.logs import bind_request, unbind_request
from api.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS, WEBSOCKET_CONNECTIONS

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ROUTES = (
    "/graphql",
    "/graphiql",
    "/health/live",
    "/health/ready",
    "/health",
    "/metrics",
    "/console",
    "/examples",
)
"""The routes a request is counted under (the first that is its path or a prefix of it);
any other path is `other`."""

_PLAUSIBLE_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def route_of(path: str) -> str:
    if path == "/":
        return "/"
    for route in ROUTES:
        if path == route or path.startswith(route + "/"):
            return route
    return "other"


def request_id_of(headers: Headers) -> str:
    """The client's request id if it is a short token, else a new one."""
    given = headers.get("x-request-id", "")
    return given if _PLAUSIBLE_ID.fullmatch(given) else uuid.uuid4().hex


class ObservedRequests:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = request_id_of(headers)
        correlation_id = headers.get("x-correlation-id") or None
        tokens = bind_request(request_id, correlation_id[:200] if correlation_id else None)
        if scope["type"] == "websocket":
            WEBSOCKET_CONNECTIONS.inc()
            try:
                await self.app(scope, receive, send)
            finally:
                WEBSOCKET_CONNECTIONS.dec()
        else:
            await self._http(scope, receive, send, request_id)
        # Left bound when the app raised: uvicorn logs the trace after we return, in this
        # request's own task, and that line should name the request too.
        unbind_request(tokens)

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        status = 500  # unless a response starts: an exception reaches the error middleware
        started = time.perf_counter()

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).setdefault("X-Request-Id", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"
            route = route_of(scope["path"])
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_REQUEST_DURATION.labels(method, route).observe(time.perf_counter() - started)
