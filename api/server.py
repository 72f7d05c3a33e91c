"""uvicorn, told to end the subscriptions streamed over HTTP before it shuts down.

On SIGTERM or Ctrl-C uvicorn closes websockets (1012), then waits for every HTTP response still
going before the lifespan's shutdown. A subscription streamed over HTTP never ends by itself, so
each would be cut by the graceful timeout (an error in the log, no closing boundary for the
client). The server drains them first: each ends with its closing boundary, the client
resubscribes with `after`, and the shutdown goes on at once.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import Any

import uvicorn

STARTUP_FAILURE = 3
"""uvicorn's exit status when the application did not start."""


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: Callable[[], None]) -> None:
        super().__init__(config)
        self.drain = drain

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.drain()
        await super().shutdown(sockets)


def run(app: Any, drain: Callable[[], None], **options: Any) -> None:
    """`uvicorn.run(app, **options)` for one process and an app object, draining at shutdown."""
    server = DrainingServer(uvicorn.Config(app, **options), drain)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
