"""The console at /console: an operator's view of the read models, the live log, any stream and
the live subscribers, built from `console/` into `api/static/console/` and served by the service.

It is a client of the public GraphQL API and nothing else (HTTP and graphql-ws at /graphql, a
token as any client sends one): the service serves its files and refuses or answers its
operations as it would any other caller's. Its page and assets carry CONTENT_SECURITY_POLICY,
the service's own origin only, so it works offline and loads nothing from elsewhere.
`cd console && npm ci && npm run build` writes the files again.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

BUILT = Path(__file__).parent / "static" / "console"
"""What `npm run build` writes: index.html and the assets it names."""

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    )
)
"""Scripts, styles and connections (fetch and the same-origin websocket, which 'self' covers)
from the service's own origin only; unlike the playground's, no inline style: the console
writes none."""

IMMUTABLE = "public, max-age=31536000, immutable"
"""Each asset's name carries a hash of its content: a new build names new files."""


async def console_page(request: Request) -> Response:
    """The page; read on each request, as it is small and a rebuild changes it."""
    html = (BUILT / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(
        html,
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"},
    )


class ConsoleAssets(StaticFiles):
    """The built assets, each with the console's Content-Security-Policy."""

    def __init__(self) -> None:
        super().__init__(directory=BUILT / "assets")

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = IMMUTABLE
        return response


def console_routes() -> list[BaseRoute]:
    """The page at /console (and /console/) and its assets, when the build is there."""
    if not (BUILT / "index.html").is_file():
        return []
    return [
        Route("/console", console_page),
        Route("/console/", console_page),
        Mount("/console/assets", ConsoleAssets()),
    ]
