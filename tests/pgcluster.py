"""Find or start a PostgreSQL server for the tests.

Order: RELATE_TEST_DATABASE_URL; else the server at 127.0.0.1:5432 (user postgres); else a
throwaway cluster started from the installed PostgreSQL binaries. `Cluster` is also used
directly by tests that must stop and restart a server.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

import psycopg2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def can_connect(dsn: str) -> bool:
    try:
        psycopg2.connect(dsn, connect_timeout=3).close()
        return True
    except psycopg2.Error:
        return False


def pg_bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


class Cluster:
    """A private PostgreSQL cluster on a free loopback port (runs as `postgres` when root)."""

    def __init__(self) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL binaries installed")
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="relate-pg-")
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", f"{self.dir}/data", "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")

    def _run(self, tool: str, *args: str) -> None:
        cmd = [os.path.join(self.bindir, tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", f"{self.dir}/data", "-o", opts, "-l", f"{self.dir}/log", "-w", "start")
        deadline = time.monotonic() + 30
        while not can_connect(self.dsn):
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start")
            time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", f"{self.dir}/data", "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def find_server() -> tuple[str | None, Cluster | None]:
    """(admin libpq DSN, cluster we started or None); (None, None) when there is no PostgreSQL."""
    env = os.environ.get("RELATE_TEST_DATABASE_URL")
    if env:
        from sqlalchemy.engine import make_url

        url = make_url(env).set(drivername="postgresql")
        return url.render_as_string(hide_password=False), None
    local = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    if can_connect(local):
        return local, None
    if pg_bindir() is None:
        return None, None
    cluster = Cluster()
    cluster.start()
    return cluster.dsn, cluster
