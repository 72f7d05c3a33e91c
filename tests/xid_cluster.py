"""Private PostgreSQL clusters whose next transaction id is chosen, for the feed's edge cases.

The feed orders the log by the writers' `xid8` transaction ids. Two places where that order is
easy to get wrong never show on a test server whose ids sit at some five-digit number: where
the ids change their number of digits (999,999 -> 1,000,000: a text sort breaks there) and
the 32-bit wraparound into epoch 1 (4,294,967,295 -> 2^32 + 3: a 32-bit `xid` breaks there).

`XidClusters.prepare()` runs `initdb` once, migrates a `chronicle` database, freezes every
database (else the rows written before the jump would look like the future after it and
vanish), and stops. `XidClusters.start(next_xid)` copies that folder, moves the copy's next
transaction id with `pg_resetwal`, extends the commit log segment that id falls in (resetwal
does not create it), and starts it on a free port. Run as root, the server binaries run as the
`postgres` user (PostgreSQL refuses root).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from store.database import create_engine
from store.migrations import upgrade

DIGITS_BOUNDARY = 1_000_000
"""The first transaction id with seven digits."""

WRAPAROUND = 2**32
"""The first `xid8` of epoch 1: the 32-bit xid wraps around (to 3, the first normal xid)."""

CLOG_SEGMENT_XIDS = 1_048_576  # 32 pages of 8 KB, 4 transactions a byte
CLOG_SEGMENT_BYTES = 262_144


def server_bindir() -> Path:
    """The machine's PostgreSQL server binaries (`pg_config --bindir`, else Debian's folder)."""
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(Path(found.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_resetwal").exists():
            return folder
    raise RuntimeError("no PostgreSQL server binaries (initdb, pg_resetwal) on this machine")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class XidClusters:
    """Clusters made from one prepared, migrated and frozen data folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.bindir = server_bindir()
        self.template = folder / "template"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(folder, entry.pw_uid, entry.pw_gid)
            self._owner = (entry.pw_uid, entry.pw_gid)

    def _run(self, *command: str) -> str:
        full = [str(self.bindir / command[0]), *command[1:]]
        if self._as_postgres:
            full = ["runuser", "-u", "postgres", "--", *full]
        done = subprocess.run(full, capture_output=True, text=True, cwd=self.folder)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def _start(self, data: Path, port: int) -> str:
        options = (
            f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c autovacuum=off -c max_connections=100 -c shared_buffers=32MB"
        )
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(data / "server.log"),
        )
        return f"postgresql://postgres@127.0.0.1:{port}"

    def _stop(self, data: Path) -> None:
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(data))

    def prepare(self) -> None:
        """initdb, migrate a `chronicle` database, freeze every database, stop."""
        self._run(
            "initdb",
            "-D",
            str(self.template),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        url = self._start(self.template, _free_port())
        try:
            asyncio.run(self._migrate(url))
        finally:
            self._stop(self.template)

    async def _migrate(self, url: str) -> None:
        admin = await asyncpg.connect(f"{url}/postgres")
        try:
            await admin.execute("CREATE DATABASE chronicle")
        finally:
            await admin.close()
        engine = create_engine(f"{url}/chronicle", pool_size=1)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        for database in ("postgres", "template1", "chronicle"):
            connection = await asyncpg.connect(f"{url}/{database}")
            try:
                await connection.execute("VACUUM FREEZE")
            finally:
                await connection.close()

    @contextlib.contextmanager
    def start(self, next_xid: int) -> Iterator[str]:
        """A copy of the prepared cluster whose next `xid8` is `next_xid`; yields the URL of
        its migrated `chronicle` database, and stops and removes the copy afterwards."""
        epoch, xid = divmod(next_xid, 2**32)
        assert xid >= 3 + 100, "pick an id past the special ones"
        data = Path(tempfile.mkdtemp(prefix="xid-", dir=self.folder))
        data.rmdir()
        shutil.copytree(self.template, data, symlinks=True)
        if self._as_postgres:
            for path in (data, *data.rglob("*")):
                os.lchown(path, *self._owner)
        self._run(
            "pg_resetwal",
            "-f",
            "-e",
            str(epoch),
            "-x",
            str(xid),
            "-u",
            str(xid - 100),
            "-D",
            str(data),
        )
        segment = data / "pg_xact" / f"{xid // CLOG_SEGMENT_XIDS:04X}"
        with open(segment, "ab") as clog:
            clog.truncate(CLOG_SEGMENT_BYTES)
        if self._as_postgres:
            os.chown(segment, *self._owner)
        url = self._start(data, _free_port())
        try:
            yield f"{url}/chronicle"
        finally:
            with contextlib.suppress(RuntimeError):
                self._stop(data)
            shutil.rmtree(data, ignore_errors=True)
