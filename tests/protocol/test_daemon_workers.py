"""A protocol daemon with Network__Workers=2 (relate.daemon): one listening socket served by
two worker processes, connections spread over both, a worker that dies replaced, SIGTERM
passed on, and a worker that cannot start stopping the daemon."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relate.protocol import balance, shm
from tests.protocol.test_balance import _established, _free_port, _workers
from tests.store.migrations import fresh_pg  # noqa: F401 (a fixture: a database of the test's own)

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, url: str, port: int, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("Imap__", "Network__", "ConnectionStrings__", "Database__"))}
    env.update({
        "PYTHONPATH": str(REPO),
        "ConnectionStrings__DefaultConnection": url,
        "Data__Directory": str(tmp_path),
        "Network__BindAddress": "127.0.0.1",
        "Network__Workers": "2",
        "Network__ShutdownGraceSeconds": "1",
        "Imap__Port": str(port),
        "Imap__SecurePort": "0",
        "Logging__Level": "INFO",
        **more,
    })
    return env


def _greeting(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "closed before the greeting"
        data += chunk
    assert data.startswith(b"* OK"), data
    return sock


def _wait_for(condition: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "relate", "migrate"], cwd=REPO, env=env, check=True, capture_output=True)


@contextlib.contextmanager
def running_daemon(tmp_path: Path, url: str, **more: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """An IMAP daemon with two workers, both accepting, on a port of its own (settings `more`)."""
    port = _free_port()
    env = _env(tmp_path, url, port, **more)
    _migrate(env)
    env["Database__AutoMigrate"] = "false"
    with open(tmp_path / "imapd.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "relate.imapd"], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: len(_workers(proc.pid)) == 2, "two workers")
        seen: set[int] = set()

        def both_accept() -> bool:  # a worker still opening the store takes no connection yet
            with _greeting(port):
                seen.update(pid for pid in _workers(proc.pid) if _established(pid, port))
            return len(seen) == 2

        _wait_for(both_accept, "both workers accepting")
        table = balance.Table(balance.table_path(proc.pid))
        try:  # the probes are over: the next connections are spread by the counts they publish
            _wait_for(lambda: not any(table._slots[1::2]), "the probes' sessions over")
        finally:
            table.close()
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()  # its workers get SIGTERM from the kernel (PR_SET_PDEATHSIG)
                proc.wait()
        shm.remove_files_of(proc.pid)  # left behind only by a daemon killed outright


@pytest.fixture
def daemon(tmp_path: Path, fresh_pg: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:  # noqa: F811
    with running_daemon(tmp_path, fresh_pg) as running:
        yield running


def test_workers_share_the_port_and_the_connections(daemon: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = daemon
    clients = []
    try:
        for _ in range(10):  # each greeted (accepted, counted) before the next connects
            clients.append(_greeting(port))
        workers = _workers(proc.pid)
        _wait_for(lambda: sum(_established(pid, port) for pid in workers) == 10, "ten sessions open")
        counts = sorted(_established(pid, port) for pid in workers)
        assert counts[1] - counts[0] <= 2, counts
    finally:
        for sock in clients:
            sock.close()


def test_a_worker_that_dies_is_replaced_and_sigterm_stops_all(daemon: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = daemon
    first, second = _workers(proc.pid)
    os.kill(first, signal.SIGKILL)
    _wait_for(lambda: len(_workers(proc.pid)) == 2 and first not in _workers(proc.pid), "a new worker")
    assert second in _workers(proc.pid)
    for _ in range(4):
        _greeting(port).close()
    workers = _workers(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    for pid in workers:
        _wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2],
                  f"worker {pid} gone")


def test_workers_end_when_the_daemon_is_killed(daemon: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, _port = daemon
    workers = _workers(proc.pid)
    proc.kill()
    proc.wait()
    for pid in workers:
        _wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists(), f"worker {pid} gone")


def test_workers_that_cannot_start_stop_the_daemon(tmp_path: Path, fresh_pg: str) -> None:  # noqa: F811
    env = _env(tmp_path, fresh_pg, _free_port(), Database__AutoMigrate="false")  # an empty database: no schema
    done = subprocess.run([sys.executable, "-m", "relate.imapd"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "could not start" in done.stderr


def test_several_workers_need_postgresql(tmp_path: Path) -> None:
    env = _env(tmp_path, f"sqlite:///{tmp_path / 'relate.db'}", _free_port())
    done = subprocess.run([sys.executable, "-m", "relate.imapd"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "Network__Workers=2: several workers need PostgreSQL" in done.stderr


def test_a_starting_daemon_removes_the_files_of_daemons_killed_outright(tmp_path: Path, fresh_pg: str) -> None:  # noqa: F811
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stale, kept = shm.shared_file("limits", gone.pid), shm.shared_file("workers", alive.pid)
    try:
        stale.write_bytes(bytes(16))
        kept.write_bytes(bytes(16))
        with running_daemon(tmp_path, fresh_pg):
            assert not stale.exists()
            assert kept.exists()
    finally:
        alive.kill()
        alive.wait()
        stale.unlink(missing_ok=True)
        kept.unlink(missing_ok=True)
