"""The playground: GraphiQL built from `web/` into `api/static/graphiql/`, served by the service.

Its page is answered at GET /graphql when a browser asks for it (see `ChronicleGraphQL`) and its
assets under ASSETS_PATH, each with CONTENT_SECURITY_POLICY: the page loads nothing from another
origin, so it works offline, and a browser refuses it anything else. The built files ship inside
the package; `cd web && npm ci && npm run build` writes them again.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

BUILT = Path(__file__).parent / "static" / "graphiql"
"""What `npm run build` writes: index.html and the assets it names."""

ASSETS_PATH = "/graphiql/assets"
"""Where the page finds its scripts, styles, fonts and workers (vite's `base` plus `assets`)."""

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        # Monaco writes <style> elements for its themes and decorations and takes no nonce.
        "style-src 'self' 'unsafe-inline'",
        # GraphiQL's fonts and the icons of its stylesheets are data: URLs.
        "font-src 'self' data:",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    )
)
"""The playground's own origin only: scripts, workers and connections (fetch and the
same-origin websocket, which 'self' covers) come from nowhere else."""

IMMUTABLE = "public, max-age=31536000, immutable"
"""Each asset's name carries a hash of its content: a new build names new files."""


def playground_page() -> HTMLResponse:
    """The page at /graphql; read on each request, as it is small and a rebuild changes it."""
    html = (BUILT / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(
        html,
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"},
    )


class PlaygroundAssets(StaticFiles):
    """The built assets, each with the playground's Content-Security-Policy (a worker's script
    is governed by the policy it is served with)."""

    def __init__(self) -> None:
        super().__init__(directory=BUILT / "assets")

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = IMMUTABLE
        return response


def playground_routes(served: bool) -> list[BaseRoute]:
    """The assets' mount when GraphiQL is served; else none, and their paths are a 404."""
    return [Mount(ASSETS_PATH, PlaygroundAssets())] if served else []
