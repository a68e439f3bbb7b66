"""Connection limits across the workers of one daemon: an IMAP daemon with Network__Workers=2 on
PostgreSQL, clients on real sockets, and each limit's sessions spread over both workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.protocol.test_balance import _established, _workers
from tests.protocol.test_daemon_workers import REPO, _env, _greeting, _wait_for, running_daemon
from tests.store.migrations import fresh_pg  # noqa: F401 (a fixture: a database of the test's own)

REFUSED = b"* BYE too many connections; try again later\r\n"


def _connect(port: int, source: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    """A client and the first line the daemon said to it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return sock, data


def _closed(sock: socket.socket) -> bool:
    """Read to the end: True when the daemon closed the connection."""
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True


def _hang_up(sock: socket.socket) -> None:
    """Close, and wait until the daemon has closed its side (its session, and its count, is over)."""
    sock.shutdown(socket.SHUT_WR)
    assert _closed(sock)
    sock.close()


def _on_both_workers(daemon: int, port: int, clients: int) -> None:
    counts = [_established(pid, port) for pid in _workers(daemon)]
    assert sum(counts) == clients and min(counts) > 0, counts


def _command(sock: socket.socket, line: str) -> bytes:
    """Send one tagged command; its tagged reply line."""
    tag = line.split(" ", 1)[0].encode()
    sock.sendall(line.encode() + b"\r\n")
    data = b""
    while not (data.startswith(tag + b" ") or b"\r\n" + tag + b" " in data) or not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data[data.rindex(tag + b" "):]


def test_the_connection_limit_counts_every_worker(tmp_path: Path, fresh_pg: str) -> None:  # noqa: F811
    with running_daemon(tmp_path, fresh_pg, Network__MaxConnections="3") as (proc, port):
        clients = [_greeting(port) for _ in range(3)]  # each greeted before the next: spread
        _on_both_workers(proc.pid, port, 3)
        refused, said = _connect(port)
        assert said == REFUSED
        assert _closed(refused)
        _hang_up(clients.pop())
        again, said = _connect(port)
        assert said.startswith(b"* OK")
        clients.append(again)
        refused, said = _connect(port, source="127.0.0.2")  # full for every client
        assert said == REFUSED
        for sock in [*clients, refused]:
            sock.close()


def test_the_per_ip_limit_counts_every_worker(tmp_path: Path, fresh_pg: str) -> None:  # noqa: F811
    with running_daemon(tmp_path, fresh_pg, Network__MaxConnectionsPerIp="2") as (proc, port):
        clients = [_greeting(port) for _ in range(2)]
        _on_both_workers(proc.pid, port, 2)
        refused, said = _connect(port)
        assert said == b"* BYE too many connections from 127.0.0.1; try again later\r\n"
        assert _closed(refused)
        other, said = _connect(port, source="127.0.0.2")  # another client is not affected
        assert said.startswith(b"* OK")
        _hang_up(clients.pop())
        again, said = _connect(port)
        assert said.startswith(b"* OK")
        for sock in [*clients, other, again]:
            sock.close()


def test_sessions_of_a_killed_worker_stop_counting(tmp_path: Path, fresh_pg: str) -> None:  # noqa: F811
    with running_daemon(tmp_path, fresh_pg, Network__MaxConnections="3") as (proc, port):
        clients = [_greeting(port) for _ in range(3)]
        _on_both_workers(proc.pid, port, 3)
        victim = next(pid for pid in _workers(proc.pid) if _established(pid, port) == 1)
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: len(_workers(proc.pid)) == 2 and victim not in _workers(proc.pid), "a new worker")
        admitted, said = _connect(port)  # in the place the killed worker's session held
        assert said.startswith(b"* OK")
        refused, said = _connect(port)
        assert said == REFUSED
        for sock in [*clients, admitted, refused]:
            sock.close()


def _relate(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "relate", *args], cwd=REPO, env=env, check=True,
                          capture_output=True, text=True)
    return done.stdout


def test_sessions_per_user_count_every_worker(tmp_path: Path, fresh_pg: str) -> None:  # noqa: F811
    settings = {"Imap__MaxConnectionsPerUser": "2", "Tls__AllowInsecureAuth": "true"}
    with running_daemon(tmp_path, fresh_pg, **settings) as (proc, port):
        env = _env(tmp_path, fresh_pg, port, **settings)
        _relate(env, "users", "add", "alice@limits.test")
        key = json.loads(_relate(env, "keys", "create", "alice@limits.test", "--name", "imap", "--scopes", "imap",
                                 "--json"))["key"]
        login = f'a LOGIN alice@limits.test "{key}"'
        clients = [_greeting(port) for _ in range(3)]
        _on_both_workers(proc.pid, port, 3)
        assert _command(clients[0], login).startswith(b"a OK")
        assert _command(clients[1], login).startswith(b"a OK")
        assert _command(clients[2], login) == b"a NO [LIMIT] too many connections for this user\r\n"
        assert _command(clients[0], "z LOGOUT").startswith(b"z OK")
        assert _closed(clients[0])  # the session, and its count, is over
        assert _command(clients[2], login).startswith(b"a OK")
        for sock in clients:
            sock.close()
