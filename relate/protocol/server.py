"""Listeners and their lifecycle: a ServiceGroup is the set of ports one daemon serves.

Invariants:
- One greenlet per connection; the handler is plain blocking code on a `Connection`.
- Limits are enforced at accept, before any handshake or greeting: at most
  `Network__MaxConnections` sessions in the group and `Network__MaxConnectionsPerIp` per
  client (per address for IPv4, per /64 for IPv6, since one host owns a whole /64), counted
  in the process, or across the daemon's workers when it has several (`counts`,
  relate.protocol.limits). Refused clients get the listener's `refuse` reply and are closed;
  they never count as sessions.
- Implicit-TLS handshakes (RFC 8314 §3.3) happen inside the connection's greenlet with a
  deadline, so a client that never handshakes holds up nobody else.
- Nothing a handler raises escapes its greenlet: I/O endings are logged as one line, anything
  else with its traceback and the connection id. The socket is always closed.
- Stopping: stop accepting at once, set `Connection.shutdown`, give sessions the grace period
  to finish, raise ServerShutdown into those still running (they may say goodbye), then kill
  what is left. A second SIGTERM/SIGINT skips the rest of the grace period.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.pool
import gevent.socket
from gevent.baseserver import parse_address
from gevent.server import StreamServer

from relate import metrics
from relate.config import ConfigError, Settings
from relate.protocol import limits, tls
from relate.protocol.connection import (
    HANDSHAKE_TIMEOUT,
    Connection,
    ProtocolIOError,
    ServerShutdown,
)

log = logging.getLogger("relate.protocol.server")

REFUSAL_TIMEOUT = 10.0  # whole refusal, handshake included: a refused client gets little time
MAX_REFUSAL_HANDSHAKES = 50  # concurrent TLS handshakes spent on refusing; beyond, just close
KILL_GRACE = 2.0  # after ServerShutdown is raised, before the session is killed outright
LISTEN_BACKLOG = StreamServer.backlog  # what StreamServer binds with; listen() binds the same way

SslContexts = ssl.SSLContext | Callable[[str], ssl.SSLContext] | None


@dataclass(frozen=True)
class Listener:
    """One port a daemon serves."""

    name: str  # e.g. "smtp-submission"; used in logs and in ServiceGroup.bound_port()
    port: int  # 0 binds any free port (tests); a daemon skips a listener its setting disables
    implicit_tls: bool  # TLS from the first byte (RFC 8314 §3.3), else plaintext with STARTTLS
    handler: Callable[[Connection], None]  # runs one session; returns (or raises) when it is over
    refuse: Callable[[Connection, str], None] | None = None  # writes "too busy" before the close
    protocol: str = ""  # "smtp", "pop3" or "imap": which certificate; default: the name's prefix
    setting: str = ""  # the variable that chose the port ("Smtp__Port"), named in bind errors

    @property
    def tls_protocol(self) -> str:
        """`protocol`, else the protocol the name starts with ("imaps" → "imap")."""
        if self.protocol:
            return self.protocol
        return next((p for p in tls.PROTOCOLS if self.name.startswith(p)), self.name.split("-", 1)[0])


def limit_key(ip: str) -> str:
    """What the per-client limit counts: the IPv4 address, or the IPv6 /64."""
    if ":" not in ip:  # IPv4 (or not an IP address at all): the address itself, as below
        return ip
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if addr.version == 6:
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return ip


class ServiceGroup:
    """The listeners of one daemon (or of the all-in-one process) and their sessions."""

    def __init__(
        self,
        settings: Settings,
        ssl_context: SslContexts = None,
        *,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        counts: limits.SharedCounts | None = None,
    ):
        """`ssl_context`: one context for every listener, a factory called with the
        listener's protocol, or None for `tls.server_context(settings, protocol)`.
        `counts`: the daemon's, when the limits count across its workers."""
        self.settings = settings
        self.handshake_timeout = handshake_timeout
        self._counts = counts  # None: the limits count this process's sessions
        self._ssl_context = ssl_context
        self._listeners: dict[str, Listener] = {}  # by name, in add() order
        self._servers: dict[str, StreamServer] = {}  # by listener name, once started
        self._contexts: dict[str, ssl.SSLContext | None] = {}  # by listener name, once started
        self._loggers: dict[str, logging.Logger] = {}  # by listener name: "relate.smtpd" etc., once started
        self._ports: dict[str, int] = {}  # by listener name, once bound: every accepted socket's local port
        self._greenlets = gevent.pool.Group()  # every connection greenlet, refused ones too
        self._connections: set[Connection] = set()  # admitted sessions
        self._per_client: Counter[str] = Counter()  # admitted sessions by limit_key
        self._refusing_tls = 0  # refusal handshakes in progress
        self._shutdown = gevent.event.Event()  # set when stop() begins; Connection.shutdown
        self._force = gevent.event.Event()  # a second signal: skip the rest of the grace period
        self._stopped = gevent.event.Event()  # set when stop() has finished
        self._signal_handles: list[Any] = []  # from install_signal_handlers, cancelled by stop()
        self._sockets: dict[str, Any] = {}  # listening sockets bound beforehand (listen()), by name

    # -- setup -----------------------------------------------------------------------------

    def add(self, listener: Listener) -> None:
        if self._servers:
            raise RuntimeError("add listeners before start()")
        if listener.name in self._listeners:
            raise ValueError(f"duplicate listener name {listener.name!r}")
        self._listeners[listener.name] = listener

    def listen(self) -> dict[str, Any]:
        """Bind every listener's socket without serving it (a daemon's parent does, before its
        workers serve them: relate.daemon). Raises ConfigError on a port that cannot be bound;
        then nothing stays bound."""
        sockets: dict[str, Any] = {}
        try:
            for listener in self._listeners.values():
                address = (self.settings.bind_address, listener.port)
                try:
                    family, where = parse_address(address)
                    sockets[listener.name] = StreamServer.get_listener(where, LISTEN_BACKLOG, family)
                except OSError as exc:
                    raise self._bind_error(listener, exc) from None
        except BaseException:
            for sock in sockets.values():
                sock.close()
            raise
        return sockets

    def _bind_error(self, listener: Listener, exc: OSError) -> ConfigError:
        what = f"{listener.setting}={listener.port}" if listener.setting else f"listener {listener.name}"
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return ConfigError(f"{what}: cannot listen on {self.settings.bind_address}:{listener.port} ({reason})")

    def start(self, sockets: dict[str, Any] | None = None) -> None:
        """Load certificates and bind every listener (or serve the sockets `listen` bound, by
        listener name). Raises ConfigError on a bad certificate or a port that cannot be bound;
        then nothing stays bound."""
        if self._servers:
            return
        self._sockets = sockets or {}
        by_protocol: dict[str, ssl.SSLContext | None] = {}
        for listener in self._listeners.values():
            protocol = listener.tls_protocol
            if protocol not in by_protocol:
                by_protocol[protocol] = self._context_for(protocol)
            if listener.implicit_tls and by_protocol[protocol] is None:
                raise ValueError(f"listener {listener.name!r} needs TLS but has no SSL context")
            self._contexts[listener.name] = by_protocol[protocol]
            self._loggers[listener.name] = logging.getLogger(f"relate.{protocol}d")
        try:
            for listener in self._listeners.values():
                self._bind(listener)
        except BaseException:
            for server in self._servers.values():
                server.close()
            self._servers.clear()
            self._ports.clear()
            raise

    def _context_for(self, protocol: str) -> ssl.SSLContext | None:
        if self._ssl_context is None:
            return tls.server_context(self.settings, protocol) if protocol in tls.PROTOCOLS else None
        if callable(self._ssl_context):
            return self._ssl_context(protocol)
        return self._ssl_context

    def _bind(self, listener: Listener) -> None:
        address = (self.settings.bind_address, listener.port)

        def handle(sock: gevent.socket.socket, peer: tuple[str, int]) -> None:
            self._serve(listener, sock, peer)

        bound = self._sockets.get(listener.name)
        server = StreamServer(bound if bound is not None else address, handle=handle, spawn=self._greenlets.spawn)
        try:
            server.start()
        except OSError as exc:
            raise self._bind_error(listener, exc) from None
        self._servers[listener.name] = server
        self._ports[listener.name] = int(server.server_port)
        log.info(
            "listening on %s:%d for %s%s",
            address[0],
            server.server_port,
            listener.name,
            " (implicit TLS)" if listener.implicit_tls else "",
        )

    def bound_port(self, name: str) -> int:
        """The port listener `name` is bound to (the real one when it asked for port 0)."""
        return int(self._servers[name].server_port)

    @property
    def open_connections(self) -> int:
        """Connections open in this process, admitted or being refused (what relate.protocol.balance
        compares between workers)."""
        return len(self._greenlets)

    @property
    def connection_count(self) -> int:
        """Sessions admitted and not yet finished."""
        return len(self._connections)

    @property
    def listener_names(self) -> list[str]:
        return list(self._listeners)

    @property
    def stopping(self) -> bool:
        return self._shutdown.is_set()

    # -- running ---------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Start if needed and block until stop() has finished."""
        self.start()
        try:
            self._stopped.wait()
        except KeyboardInterrupt:
            self.stop()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the group gracefully; a second one ends sessions at once."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._signal_handles.append(gevent.signal_handler(signum, self._on_signal, signum))

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._shutdown.is_set():
            log.warning("%s again: closing the remaining sessions now", name)
            self._force.set()
            return
        log.info("%s: shutting down", name)
        gevent.spawn(self.stop)

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting now, let sessions finish for up to `grace` seconds (default
        `Network__ShutdownGraceSeconds`), then end the rest. Returns when all are closed."""
        if self._shutdown.is_set():
            self._stopped.wait()
            return
        if grace is None:
            grace = self.settings.shutdown_grace_seconds
        self._shutdown.set()
        for server in self._servers.values():
            server.close()
        if self._greenlets:
            log.info("waiting up to %.0fs for %d session(s) to finish", grace, len(self._connections))
            joiner = gevent.spawn(self._greenlets.join)
            gevent.wait([joiner, self._force], timeout=grace, count=1)
            joiner.kill()
        if self._greenlets:
            log.info("ending %d session(s) still open", len(self._greenlets))
            self._greenlets.kill(exception=ServerShutdown, block=True, timeout=KILL_GRACE)
        if self._greenlets:
            self._greenlets.kill(block=True, timeout=KILL_GRACE)
        for conn in list(self._connections):
            conn.close()
        for handle in self._signal_handles:
            handle.cancel()
        self._signal_handles.clear()
        log.info("stopped")
        self._stopped.set()

    # -- one connection --------------------------------------------------------------------

    def _serve(self, listener: Listener, sock: gevent.socket.socket, peer: tuple[str, int]) -> None:
        conn = Connection(
            sock,
            peer,
            listener_name=listener.name,
            ssl_context=self._contexts.get(listener.name),
            shutdown=self._shutdown,
            logger=self._loggers[listener.name],
            local_port=self._ports[listener.name],
        )
        key = limit_key(conn.peer[0])
        counts = self._counts
        counted: list[int] = []  # the shared table's keys this session was counted under
        # No switch between this check and the increments below, so counts cannot race.
        if self._shutdown.is_set():
            reason, overloaded = "server shutting down", True
        elif counts is None:
            reason, overloaded = self._over_limit(len(self._connections), self._per_client[key], conn.peer[0])
        else:
            reason, overloaded = self._admit_across_workers(counts, key, conn.peer[0], counted)
        if reason:
            metrics.incr(listener.tls_protocol, "connections_refused")
            self._refuse(listener, conn, reason, overloaded)
            return
        metrics.incr(listener.tls_protocol, "connections")
        self._connections.add(conn)
        self._per_client[key] += 1
        try:
            self._run_session(listener, conn)
        finally:  # uncounted before the close: a client that sees it finds its place free
            self._connections.discard(conn)
            self._per_client[key] -= 1
            if self._per_client[key] <= 0:
                del self._per_client[key]
            if counts is not None and counted:
                with counts.locked():
                    for shared_key in counted:  # only what was counted: a full table counts nothing
                        counts.remove(shared_key)
            conn.close()

    def _over_limit(self, sessions: int, from_client: int, ip: str) -> tuple[str, bool]:
        """Why a new session is refused ("" when it is not), and whether the whole group is full."""
        if sessions >= self.settings.max_connections:
            return "too many connections", True
        if from_client >= self.settings.max_connections_per_ip:
            return f"too many connections from {ip}", False
        return "", False

    def _admit_across_workers(self, counts: limits.SharedCounts, key: str, ip: str,
                              counted: list[int]) -> tuple[str, bool]:
        """`_over_limit` with every worker's sessions, and the new one counted when admitted
        (the keys it was counted under go in `counted`)."""
        client = limits.client_key(key)
        with counts.locked():
            reason, overloaded = self._over_limit(counts.count(limits.ALL), counts.count(client), ip)
            if not reason:
                counted.extend(k for k in (limits.ALL, client) if counts.add(k))
        return reason, overloaded

    def _run_session(self, listener: Listener, conn: Connection) -> None:
        conn.log.info("connected to %s (port %d)", listener.name, conn.local_port)
        outcome = "closed"
        try:
            if listener.implicit_tls:
                conn.start_tls(timeout=self.handshake_timeout)
            listener.handler(conn)
        except ServerShutdown:
            outcome = "ended by server shutdown"
        except ProtocolIOError as exc:
            outcome = f"closed: {exc}"
        except gevent.GreenletExit:
            outcome = "killed at shutdown"
            raise
        except Exception:
            conn.log.exception("session failed")
            metrics.incr(listener.tls_protocol, "sessions_failed")
            outcome = "closed after an internal error"
        finally:
            conn.log.info("%s after %.1fs", outcome, time.monotonic() - conn.opened_at)

    def _refuse(self, listener: Listener, conn: Connection, reason: str, overloaded: bool) -> None:
        """Tell the client why (if the listener can) and close. Over implicit TLS the reply needs a
        handshake; that is skipped when the whole group is overloaded or too many are in flight."""
        conn.log.info("refused on %s: %s", listener.name, reason)
        handshake = listener.implicit_tls and listener.refuse is not None
        if handshake and (overloaded or self._refusing_tls >= MAX_REFUSAL_HANDSHAKES):
            conn.close()
            return
        if handshake:
            self._refusing_tls += 1
        try:
            if listener.refuse is not None:
                with gevent.Timeout(REFUSAL_TIMEOUT, False):
                    if handshake:
                        conn.start_tls(timeout=REFUSAL_TIMEOUT)
                    listener.refuse(conn, reason)
        except ProtocolIOError:
            pass
        except Exception:
            conn.log.exception("refusal reply failed")
        finally:
            if handshake:
                self._refusing_tls -= 1
            conn.close()
