"""Spread client connections evenly over the worker processes of one parent: the API's
gunicorn workers (webapp.wsgi) and a protocol daemon's workers (relate.daemon, Network__Workers).

The workers share the listening socket, and whichever calls accept() first gets a new
connection. On a busy machine that is the worker already running: a burst of new keep-alive
connections (a load balancer's pool, browsers after a restart, WebSockets) lands mostly on
one worker, which then serves all of them on one core while the others idle. With 20
clients on two workers, splits of 20/0 and 15/5 were usual, and the busier worker's clients
waited two to three times as long.

So each worker publishes how many connections it holds in a small table shared by the
workers of its parent (relate.protocol.shm: a file in /dev/shm named after the parent's pid,
one slot per worker, its pid and its count), and a worker that holds more than the least
loaded of the others leaves a pending connection to them: it stops watching the listening
socket for DEFER seconds, at most MAX_DEFERS times in a row, and then accepts anyway (a
worker busy with a long request, or one that died since it last wrote, must not keep
connections waiting). These counts steer accepts only; the connection limits are counted
exactly, elsewhere (relate.protocol.limits).

Slots are claimed under an exclusive flock; a slot whose pid is gone is free. Counts are
8-byte aligned integers written whole; a reader at worst sees a count one update old, which
costs balance, never a connection.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from gevent.baseserver import BaseServer

from relate.protocol import shm

log = logging.getLogger("relate.balance")

SLOTS = 256  # workers per parent at most
DEFER = 0.002  # seconds a busier worker leaves a pending connection to the others
MAX_DEFERS = 25  # then it accepts anyway: at most 50 ms more to wait for a connection
REFRESH = 0.1  # seconds between updates of a worker's count as its connections close


class Table:
    """The shared table of (pid, connections) slots of one parent's workers."""

    def __init__(self, path: Path):
        self.path = path
        self._shared = shm.SharedInts(path, SLOTS * 2)
        self._slots = self._shared.ints  # pid, count, pid, count, ...
        self.slot = -1

    def claim(self, pid: int) -> int:
        """Take a free slot for `pid`; its index. Slots of workers that are gone are emptied
        on the way (a worker killed outright never gave its slot back)."""
        with self._shared.locked():
            for i in range(SLOTS):
                owner = self._slots[2 * i]
                if owner and owner != pid and not shm.alive(owner):
                    self._slots[2 * i + 1] = 0
                    self._slots[2 * i] = 0
            for i in range(SLOTS):
                if self._slots[2 * i] in (0, pid):
                    self._slots[2 * i + 1] = 0
                    self._slots[2 * i] = pid
                    self.slot = i
                    return i
        raise RuntimeError(f"no free slot among {SLOTS} in {self.path}")

    def release(self) -> bool:
        """Give the slot back; True when no other worker holds one (the table may go)."""
        if self.slot < 0:
            return False
        with self._shared.locked():
            self._slots[2 * self.slot + 1] = 0
            self._slots[2 * self.slot] = 0
            self.slot = -1
            return not any(self._slots[2 * i] and shm.alive(self._slots[2 * i]) for i in range(SLOTS))

    def publish(self, connections: int) -> None:
        self._slots[2 * self.slot + 1] = connections

    def least_of_others(self) -> int | None:
        """The fewest connections any other worker holds (None when there is none)."""
        least = None
        slots = self._slots
        for i in range(SLOTS):
            if i != self.slot and slots[2 * i]:
                count = slots[2 * i + 1]
                if least is None or count < least:
                    least = count
        return least

    def close(self) -> None:
        self._shared.close()


def table_path(parent_pid: int) -> Path:
    return shm.shared_file("workers", parent_pid)


def _pool_size(server: BaseServer) -> int:
    """Connections a server spawned into a gevent Pool (gunicorn's workers) still open."""
    return len(server.pool) if server.pool is not None else 0


_connections: Callable[[BaseServer], int] = _pool_size


_table: Table | None = None
_accept = BaseServer._do_read


def _balanced_do_read(server: Any) -> None:
    """BaseServer._do_read, deferred while this worker holds more connections than another."""
    table = _table
    timer = server._timer  # gevent's back-off after an accept error, or our last deferral
    if table is not None and (timer is None or not timer.active):
        mine = _connections(server)
        least = table.least_of_others()
        deferred = getattr(server, "_relate_deferred", 0)
        if least is not None and mine > least and deferred < MAX_DEFERS:
            server._relate_deferred = deferred + 1
            server.stop_accepting()
            server._timer = server.loop.timer(DEFER)
            server._timer.start(server._start_accepting_if_started)
            return
        server._relate_deferred = 0
    _accept(server)
    if table is not None:
        table.publish(_connections(server))


def _refresh(table: Table) -> None:
    """Keep this worker's count current as connections close (accepts publish it at once)."""
    while True:
        gevent.sleep(REFRESH)
        table.publish(max((_connections(s) for s in _servers), default=0))


_servers: list[BaseServer] = []
_init = BaseServer.__init__


def _tracking_init(server: Any, *args: Any, **kwargs: Any) -> None:
    _init(server, *args, **kwargs)
    _servers.append(server)


def install(parent_pid: int | None = None, connections: Callable[[BaseServer], int] | None = None) -> None:
    """Balance this process's gevent servers with the other workers of its parent. Call once,
    in the worker, before its servers accept. `connections` counts what a server's process
    holds (default: its spawn Pool's size)."""
    global _table, _connections
    if _table is not None:
        return
    if connections is not None:
        _connections = connections
    master = parent_pid if parent_pid is not None else os.getppid()
    try:
        table = Table(table_path(master))
        table.claim(os.getpid())
    except (OSError, RuntimeError) as exc:
        log.warning("connections are not balanced across workers: %s", exc)
        return
    _table = table
    BaseServer.__init__ = _tracking_init
    BaseServer._do_read = _balanced_do_read
    gevent.spawn(_refresh, table)

    def release() -> None:
        if table.release():
            with contextlib.suppress(OSError):
                table.path.unlink()

    atexit.register(release)
