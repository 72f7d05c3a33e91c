"""CORS: which browser pages on other origins may call the API over HTTP.

`CHRONICLE_ALLOWED_ORIGINS` lists them, for HTTP here as for websockets in strawberry's origin
check. A preflight (OPTIONS with `Access-Control-Request-Method`) is answered here and never
reaches the GraphQL endpoint: from an allowed origin with its origin, the methods (GET, POST)
and the headers a client sends (`Content-Type`, `Authorization`, `X-Correlation-Id`, `Accept`);
from any other origin with no allow header, in GraphQL's error shape. Responses to an allowed
origin carry `Access-Control-Allow-Origin` and expose `Retry-After`.

Credentials (cookies, which this service does not use, and a browser's HTTP authentication) are
allowed for listed origins. `*` allows every origin, without credentials: Starlette would
otherwise echo any caller's origin back with `Allow-Credentials`, which is every origin with
credentials. A bearer token in `Authorization` needs no credentials mode either way.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Send
from strawberry.http.websocket_origin import normalize_allowed_origins

ALLOWED_METHODS = ("GET", "POST")
ALLOWED_HEADERS = ("Accept", "Authorization", "Content-Type", "X-Correlation-Id")
EXPOSED_HEADERS = ("Retry-After",)


class GraphQLShapedCORS(CORSMiddleware):
    """Starlette's CORS middleware, refusing a preflight in GraphQL's error shape rather than
    in plain text (its status and headers unchanged: no allow header for a stranger)."""

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code < 400:
            return answer
        reason = bytes(answer.body).decode()
        body = {"errors": [{"message": reason, "extensions": {"code": "BAD_REQUEST"}}]}
        headers = {k: v for k, v in answer.headers.items() if k.startswith("access-control-")}
        headers["vary"] = answer.headers.get("vary", "Origin")
        return JSONResponse(body, status_code=answer.status_code, headers=headers)

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        origin = request_headers.get("origin")
        if origin is None or self.is_allowed_origin(origin):
            await super().send(message, send, request_headers)
            return

        async def without_cors(message: Message) -> None:
            # Starlette adds Allow-Credentials and Expose-Headers for any origin: a stranger
            # gets none of it.
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name in {k for k in headers if k.startswith("access-control-")}:
                    del headers[name]
            await send(message)

        await super().send(message, without_cors, request_headers)


def cors(allowed_origins: Collection[str]) -> Middleware:
    """The CORS middleware for these origins (none: only same-origin pages call the API),
    normalised as the websocket check normalises them (`https://App.example.com:443/` is
    `https://app.example.com`); a value that is no origin stops the start."""
    origins = normalize_allowed_origins(allowed_origins)
    everyone = "*" in origins
    return Middleware(
        GraphQLShapedCORS,
        allow_origins=["*"] if everyone else sorted(origins),
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        allow_credentials=not everyone,
        expose_headers=EXPOSED_HEADERS,
    )
