"""uvicorn, told to end the subscriptions streamed over HTTP before it shuts down.

On SIGTERM or Ctrl-C uvicorn closes websockets (1012), then waits for every HTTP response still
going before the lifespan's shutdown. A subscription streamed over HTTP never ends by itself, so
each would be cut by the graceful timeout (an error in the log, no closing boundary for the
client). The server drains them first: each ends with its closing boundary, the client
resubscribes with `after`, and the shutdown goes on at once.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

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


# --------------------------------------------------------------------------- several processes


def worker_app() -> Any:
    """The app of one process of `chronicle serve --workers N`: uvicorn's factory, run in each
    worker, its settings from the environment the parent prepared (`run_workers`).

    A worker's uvicorn is not ours to subclass, so the drain at shutdown rides on its signal
    handlers: ours, set while uvicorn's are in place, drains (in the loop) and hands over."""
    from api.app import create_app
    from api.logs import configure_logging
    from api.settings import Settings

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        uvicorns = signal.getsignal(number)

        def drain_then_exit(sig: int, frame: FrameType | None, uvicorns: Any = uvicorns) -> None:
            loop.call_soon_threadsafe(app.drain)
            if callable(uvicorns):
                uvicorns(sig, frame)

        signal.signal(number, drain_then_exit)
    return app


def run_workers(workers: int, **options: Any) -> None:
    """`workers` processes serving one port (uvicorn's supervisor, which restarts a worker that
    dies). The caller has migrated the database and set the environment every worker reads."""
    config = uvicorn.Config("api.server:worker_app", factory=True, workers=workers, **options)
    sockets = [config.bind_socket()]
    Multiprocess(config, sockets=sockets).run()
