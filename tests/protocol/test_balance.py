"""Connections spread evenly over the gunicorn workers (relate.protocol.balance): the shared table of
the workers' counts, and a real gunicorn with two gevent workers taking keep-alive
connections one after another."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relate.protocol import balance

REPO = Path(__file__).resolve().parents[2]
CONNECTIONS = 40


@pytest.fixture
def other_process() -> Iterator[int]:
    """The pid of a live process that is not this one (a second 'worker')."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_table_tracks_the_least_loaded_other_worker(tmp_path: Path, other_process: int) -> None:
    path = tmp_path / "workers"
    mine, theirs = balance.Table(path), balance.Table(path)
    assert mine.claim(os.getpid()) != theirs.claim(other_process)
    assert mine.least_of_others() == 0
    theirs.publish(7)
    mine.publish(3)
    assert mine.least_of_others() == 7
    assert theirs.least_of_others() == 3
    assert theirs.release() is False  # this process still holds a slot
    assert mine.least_of_others() is None
    assert mine.release() is True
    mine.close()
    theirs.close()


def test_a_dead_workers_slot_is_taken_again(tmp_path: Path) -> None:
    path = tmp_path / "workers"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    first = balance.Table(path)
    slot = first.claim(gone.pid)  # a worker that has died since
    first.publish(40)
    also_gone = balance.Table(path)
    also_gone.slot = slot + 1
    also_gone._slots[2 * (slot + 1)] = gone.pid  # a second dead worker, in the next slot
    also_gone.publish(9)
    second = balance.Table(path)
    assert second.claim(os.getpid()) == slot
    assert second.least_of_others() is None  # both dead workers' counts are gone
    also_gone.close()
    first.close()
    second.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _workers(master: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                found.append(int(entry.name))
    return found


def _established(pid: int, port: int) -> int:
    """Connections to local `port` that process `pid` holds (from /proc: no tools needed)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "01" and fields[9] in inodes:
                    count += 1
    return count


def _get(sock: socket.socket, port: int) -> None:
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:200]


def _accepting_workers(port: int, master: int, workers: int) -> None:
    """Until every worker has accepted a connection (they import the app after the master listens)."""
    deadline = time.monotonic() + 60
    seen: set[int] = set()
    while len(seen) < workers:
        assert time.monotonic() < deadline, f"only {len(seen)} workers accept connections"
        with socket.create_connection(("127.0.0.1", port), timeout=60) as probe:
            _get(probe, port)
            seen.update(pid for pid in _workers(master) if _established(pid, port))


def _gunicorn(tmp_path: Path, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    """The API under gunicorn with gevent `workers`, listening (its workers may still be starting)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("Api__", "ConnectionStrings__"))}
    env.update({
        "PYTHONPATH": str(REPO),
        "ConnectionStrings__DefaultConnection": f"sqlite:///{tmp_path / 'relate.db'}",
        "Data__Directory": str(tmp_path),
        "Logging__Level": "WARNING",
    })
    subprocess.run([sys.executable, "-m", "relate", "migrate"], cwd=REPO, env=env, check=True, capture_output=True)
    env["Database__AutoMigrate"] = "false"
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gevent", "-b", f"127.0.0.1:{port}", "--workers", str(workers),
         "--graceful-timeout", "2", "--log-level", "warning", "webapp.wsgi:app"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise AssertionError("gunicorn did not start") from None
            time.sleep(0.05)


def test_keep_alive_connections_spread_over_the_workers(tmp_path: Path) -> None:
    server, port = _gunicorn(tmp_path, 2)
    clients: list[socket.socket] = []
    try:
        _accepting_workers(port, server.pid, 2)
        # One keep-alive connection after another, each served before the next: without
        # balancing, whichever worker wakes first takes each, and the split is a coin's.
        for _ in range(CONNECTIONS):
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            clients.append(sock)
            _get(sock, port)
        counts = sorted(_established(pid, port) for pid in _workers(server.pid))
        assert sum(counts) == CONNECTIONS
        assert counts[1] - counts[0] <= 2, counts
    finally:
        for sock in clients:
            sock.close()
        server.terminate()
        server.wait(timeout=30)
    assert not balance.table_path(server.pid).exists()  # the last worker out removed the table


def test_an_api_worker_removes_the_tables_of_masters_killed_outright(tmp_path: Path, other_process: int) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale, kept = balance.table_path(gone.pid), balance.table_path(other_process)
    try:
        stale.write_bytes(bytes(16))
        kept.write_bytes(bytes(16))
        server, port = _gunicorn(tmp_path, 1)
        try:
            _accepting_workers(port, server.pid, 1)  # its worker has imported webapp.wsgi
            assert not stale.exists()
            assert kept.exists()
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        stale.unlink(missing_ok=True)
        kept.unlink(missing_ok=True)
