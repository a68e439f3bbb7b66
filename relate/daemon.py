"""Running one protocol daemon as its own process (`python -m relate.smtpd` and friends).

Every daemon starts the same way: read the settings (a bad value is one line naming the
variable, exit 1), exit 0 with a clear line when the protocol is disabled, open the store,
bind its listeners, then serve until SIGTERM/SIGINT and shut down gracefully.

With Network__Workers=N above 1 the process binds its listeners, then forks N workers that
serve those sockets, each with its own store connections, and supervises them: a worker that
dies is started again (after a second), SIGTERM/SIGINT are passed on to every worker and the
daemon exits when they have all stopped; a worker that fails while starting (the database is
unreachable, a certificate is bad) stops the whole daemon with status 1. Connections are
spread evenly over the workers (relate.protocol.balance), and the connection limits count
every worker's sessions (relate.protocol.limits: each worker has a column, which is zeroed
when its worker dies, before the next worker takes it). A Python process runs on one core
at a time: the workers are how one daemon uses several.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import gevent

from relate import metrics, store
from relate.config import ConfigError, Settings, load_settings
from relate.protocol import balance, limits, shm, tls
from relate.protocol.log import setup_logging
from relate.protocol.server import Listener, ServiceGroup
from relate.store import searchindex

log = logging.getLogger("relate.daemon")


def run(protocol: str, listeners: Callable[[Settings], list[Listener]], *, search_indexer: bool = False,
        worker_init: Callable[[int], None] | None = None) -> int:
    """Entry point of one daemon; returns the process exit status. A daemon that stores
    messages runs the search indexer (relate.store.searchindex) with `search_indexer`.
    `worker_init(daemon_pid)` runs first in each worker when there are several."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"relate-{protocol}: {exc}", file=sys.stderr)
        return 1
    setup_logging(settings.log_level)
    section = {"smtp": "Smtp", "pop3": "Pop3", "imap": "Imap"}[protocol]
    if not getattr(settings, protocol).enabled:
        log.info("%s is disabled (%s__Enabled=false); exiting", protocol.upper(), section)
        return 0
    shm.sweep()  # what daemons killed outright left in shared memory
    if settings.workers > 1:
        return _supervise(protocol, listeners, settings, search_indexer, worker_init)
    return _serve(protocol, listeners, settings, search_indexer)


def _serve(protocol: str, listeners: Callable[[Settings], list[Listener]], settings: Settings,
           search_indexer: bool, sockets: dict[str, Any] | None = None) -> int:
    """Open the store and serve (the listeners' `sockets` when a parent bound them) until stopped."""
    try:
        store.open_store(settings)
        group = ServiceGroup(settings, counts=limits.shared())
        for listener in listeners(settings):
            group.add(listener)
        if sockets is not None:
            balance.install(connections=lambda _server: group.open_connections)
        group.start(sockets)
    except (ConfigError, store.StoreError) as exc:
        print(f"relate-{protocol}: {exc}", file=sys.stderr)
        return 1
    group.install_signal_handlers()  # before anything says the daemon is up
    for name in group.listener_names:
        log.info("%s listening on %s:%d", name, settings.bind_address, group.bound_port(name))
    metrics.start_flusher()
    if search_indexer:
        searchindex.start()
    group.serve_forever()
    searchindex.stop()
    metrics.stop_flusher()
    store.close_store()
    return 0


def _end_with_parent(parent: int) -> None:
    """A worker gets SIGTERM when the daemon dies, even by SIGKILL (Linux's PR_SET_PDEATHSIG):
    no worker is left serving the port without its supervisor."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the workers outlive a killed daemon
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(0)


PR_SET_PDEATHSIG = 1
RESTART_DELAY = 1.0  # seconds before a worker that died is started again
STARTUP = 5.0  # a worker that exits with status 1 this soon after starting could not start


def _supervise(protocol: str, listeners: Callable[[Settings], list[Listener]], settings: Settings,
               search_indexer: bool, worker_init: Callable[[int], None] | None) -> int:
    """Bind the listeners, fork `settings.workers` workers serving them, keep them running."""
    wanted = listeners(settings)
    probe = ServiceGroup(settings)
    for listener in wanted:
        probe.add(listener)
    try:
        sockets = probe.listen()
        for protocol_name in {listener.tls_protocol for listener in wanted} & set(tls.PROTOCOLS):
            tls.server_context(settings, protocol_name)  # a self-signed certificate is made once, here
    except ConfigError as exc:
        print(f"relate-{protocol}: {exc}", file=sys.stderr)
        return 1
    for name, sock in sockets.items():
        log.info("%s listening on %s:%d (%d workers)", name, settings.bind_address, sock.getsockname()[1],
                 settings.workers)
    shm.remove_files_of(os.getpid())  # none are ours yet: a killed daemon's that had this pid
    workers: dict[int, tuple[float, int]] = {}  # pid -> when it started, its column (relate.protocol.limits)
    stopping: list[int] = []  # the signals received
    handles: list[Any] = []

    def start_worker(column: int) -> None:
        parent = os.getpid()
        pid = os.fork()  # gevent's: the child's hub starts afresh
        if pid == 0:
            _end_with_parent(parent)
            for handle in handles:
                handle.cancel()
            status = 1
            try:
                limits.share(parent, settings, column)
                if worker_init is not None:
                    worker_init(os.getppid())
                status = _serve(protocol, listeners, settings, search_indexer, sockets)
            finally:
                logging.shutdown()
                os._exit(status)
        workers[pid] = (time.monotonic(), column)

    def on_signal(signum: int) -> None:
        stopping.append(signum)
        for pid in list(workers):
            try:
                os.kill(pid, signum)  # a second signal ends the workers' sessions at once
            except ProcessLookupError:
                pass

    for column in range(settings.workers):
        start_worker(column)
    for signum in (signal.SIGTERM, signal.SIGINT):
        handles.append(gevent.signal_handler(signum, on_signal, signum))
    status = 0
    while workers:
        try:
            pid, code = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        worker = workers.pop(pid, None)
        if worker is None:
            continue
        started, column = worker
        exit_code = os.waitstatus_to_exitcode(code)
        if stopping:
            continue
        limits.forget_worker(os.getpid(), settings, column)
        if exit_code == 1 and time.monotonic() - started < STARTUP:
            log.error("a %s worker could not start; stopping the daemon", protocol.upper())
            status = 1
            on_signal(signal.SIGTERM)
            continue
        log.warning("%s worker %d exited (%s); starting another", protocol.upper(), pid,
                    f"status {exit_code}" if exit_code >= 0 else signal.Signals(-exit_code).name)
        gevent.sleep(RESTART_DELAY)
        if not stopping:
            start_worker(column)
    for handle in handles:
        handle.cancel()
    for sock in sockets.values():
        sock.close()
    shm.remove_files_of(os.getpid())  # what the workers shared
    return status
