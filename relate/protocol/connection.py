"""One accepted client connection: bounded, deadline-driven reads, writes, STARTTLS.

Invariants:
- Memory per connection is bounded: the read buffer never holds more than the caller's
  `max_length` plus one receive chunk. Long payloads (literals, BDAT chunks) are streamed.
- Every read takes its timeout from the caller, so each daemon picks the deadline for its
  state (short before login, long after; RFC 5321 §4.5.3.2, RFC 9051 §5.4). For `read_line`
  and `read_exact` the timeout bounds the whole call; for streamed reads it bounds each chunk
  (RFC 5321 §4.5.3.2.5: a data block must make progress).
- `start_tls` throws away every byte received before the handshake: a command pipelined after
  STARTTLS/STLS was sent in plaintext and must never be executed as if it came over TLS
  (RFC 3207 §4.2, RFC 2595 §2.2; the CVE-2011-0411 class of bugs).
- All I/O errors surface as the three `ProtocolIOError` kinds; session code catches those and
  nothing socket-specific.
- One greenlet reads; writes are serialised by a lock, so another greenlet (IMAP IDLE
  notifications) may write between the reader's calls without interleaving replies.
"""

from __future__ import annotations

import logging
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Iterator

import gevent
import gevent.event
import gevent.lock
import gevent.monkey
import gevent.socket
import gevent.ssl

from relate.protocol.log import ConnectionLogger, connection_logger

RECV_CHUNK = 16 * 1024  # one recv(); also the slack above max_length the reader may hold
STREAM_CHUNK = 64 * 1024  # chunk size for streamed reads and for writes
DEFAULT_WRITE_TIMEOUT = 120.0  # per chunk written; a client that stops reading is dropped
HANDSHAKE_TIMEOUT = 30.0  # whole TLS handshake

# The real poll(), even in a monkey-patched process: a zero-timeout poll never blocks the hub.
_select = gevent.monkey.get_original("select", ("poll", "POLLIN", "POLLHUP", "POLLERR"))
base_log = logging.getLogger("relate.protocol.connection")


class ProtocolIOError(Exception):
    """The connection cannot go on as it was: closed, too slow, or sent too much."""


class ConnectionClosed(ProtocolIOError):
    """The peer closed (or reset) the connection, or the TLS layer failed."""


class Timeout(ProtocolIOError):
    """A read, write or handshake did not complete before its deadline."""


class LineTooLong(ProtocolIOError):
    """A line exceeded `max_length`. It has been read and thrown away up to its terminator, so
    the session can reply with an error and read the next command."""


class ServerShutdown(ProtocolIOError):
    """Raised into a session that is still running when the shutdown grace period ends.
    A handler may catch it to say goodbye (`421`, `* BYE`, `-ERR`) before returning."""


def new_conn_id() -> str:
    return secrets.token_hex(3)


def normalise_ip(ip: str) -> str:
    """`::ffff:192.0.2.1` (a dual-stack listener's view of IPv4) becomes `192.0.2.1`; drops `%scope`."""
    ip = ip.split("%", 1)[0]
    if ip.lower().startswith("::ffff:") and "." in ip:
        return ip[7:]
    return ip


class Deadline:
    """An absolute deadline shared by several calls: `conn.read_line(n, deadline.remaining())`.

    For a whole exchange with its own limit (a complete SASL dialogue, one DATA transaction)
    when each call's own timeout is not the point.
    """

    def __init__(self, seconds: float):
        self.expires = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left; raises Timeout once expired."""
        left = self.expires - time.monotonic()
        if left <= 0:
            raise Timeout("deadline expired")
        return left


class Connection:
    """A client connection as the session sees it. Not thread-safe; one reader greenlet."""

    conn_id: str  # short random id on every log line of this connection; set at accept
    peer: tuple[str, int]  # client (ip, port), IPv4-mapped IPv6 unwrapped; ("local", 0) for socket pairs
    local_port: int  # our port the client connected to (0 for socket pairs)
    listener_name: str  # e.g. "smtp-submission"; empty when built outside a ServiceGroup
    sock: gevent.socket.socket  # the plain socket, replaced by the TLS socket after start_tls
    tls: bool  # True once a TLS handshake completed (implicit TLS or STARTTLS)
    ssl_context: ssl.SSLContext | None  # what start_tls() uses by default; set by the ServiceGroup
    shutdown: gevent.event.Event  # set when the server begins a graceful stop
    log: ConnectionLogger  # logger that prefixes "[conn_id peer]"
    opened_at: float  # time.monotonic() at accept, for the session length in the close line
    _buffer: bytearray  # received but not yet consumed; at most max_length + RECV_CHUNK
    _scanned: int  # prefix of _buffer already searched for LF, so a long line is scanned once
    _write_lock: gevent.lock.Semaphore  # keeps concurrent writers' replies whole
    _closed: bool  # close() ran

    def __init__(
        self,
        sock: socket.socket,
        peer: tuple[str, int] | None = None,
        *,
        listener_name: str = "",
        ssl_context: ssl.SSLContext | None = None,
        shutdown: gevent.event.Event | None = None,
        logger: logging.Logger | None = None,
        local_port: int | None = None,
    ):
        """Take ownership of `sock`. A plain stdlib socket is re-wrapped as a gevent socket.
        `local_port`: the listener's port, when the caller knows it (else asked of the socket)."""
        if not isinstance(sock, gevent.socket.socket):
            sock = gevent.socket.socket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.sock = sock
        self.conn_id = new_conn_id()
        self.peer = _peer_of(sock, peer)
        self.local_port = _local_port(sock) if local_port is None else local_port
        self.listener_name = listener_name
        self.tls = False
        self.ssl_context = ssl_context
        self.shutdown = shutdown if shutdown is not None else gevent.event.Event()
        self.log = connection_logger(logger or base_log, self.conn_id, self.peer)
        self.opened_at = time.monotonic()
        self._buffer = bytearray()
        self._scanned = 0
        self._write_lock = gevent.lock.Semaphore()
        self._closed = False
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Replies are written whole; Nagle would only add a delayed-ACK stall between them.
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def __repr__(self) -> str:
        return f"<Connection {self.conn_id} {self.peer[0]}:{self.peer[1]} tls={self.tls}>"

    # -- reading ---------------------------------------------------------------------------

    def read_line(self, max_length: int, timeout: float) -> bytes:
        """One line including its terminator (b"\\r\\n" or a bare b"\\n", as received).

        `max_length` counts the terminator (RFC 5321 §4.5.3.1.4 counts CRLF in its 512).
        Raises LineTooLong after discarding the rest of that line, Timeout when the whole
        line has not arrived within `timeout` seconds, ConnectionClosed on EOF (a partial
        last line is dropped).
        """
        deadline = time.monotonic() + timeout
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0:
                if end + 1 > max_length:
                    self._consume(end + 1)
                    raise LineTooLong(f"line longer than {max_length} octets")
                return self._consume(end + 1)
            self._scanned = len(self._buffer)
            if len(self._buffer) >= max_length:
                self._discard_rest_of_line(deadline)
                raise LineTooLong(f"line longer than {max_length} octets")
            self._fill(deadline)

    def read_exact(self, n: int, timeout: float) -> bytes:
        """Exactly `n` octets (a small literal). Timeout bounds the whole call."""
        deadline = time.monotonic() + timeout
        while len(self._buffer) < n:
            self._fill(deadline, min(RECV_CHUNK, n - len(self._buffer)))
        return self._consume(n)

    def read_chunks(self, n: int, timeout: float, chunk_size: int = STREAM_CHUNK) -> Iterator[bytes]:
        """Stream exactly `n` octets in chunks (a large literal, a BDAT chunk) without holding
        them all. `timeout` bounds each chunk: a slow but steady sender is fine.

        Consume the iterator fully (or close the connection): unread octets would otherwise
        be taken as the next command.
        """
        remaining = n
        if self._buffer and remaining:
            take = min(len(self._buffer), remaining)
            remaining -= take
            yield self._consume(take)
        while remaining:
            chunk = self._recv(min(chunk_size, remaining), time.monotonic() + timeout)
            remaining -= len(chunk)
            yield chunk

    def read_into(self, n: int, sink: Callable[[bytes], object], timeout: float) -> None:
        """Stream exactly `n` octets into `sink(chunk)`; see read_chunks for the timeout."""
        for chunk in self.read_chunks(n, timeout):
            sink(chunk)

    def read_stream(self, feed: Callable[[bytes], int], done: Callable[[], bool], timeout: float) -> None:
        """Hand received octets to `feed` until `done()`: for content whose end is found in the
        stream itself (SMTP DATA), so its length is not known up front.

        `feed(data)` returns how many octets of `data` it took and must take all of them until
        it is done; what it leaves stays buffered for the next read (commands pipelined after
        the content). `timeout` bounds each receive, as for read_chunks. Memory stays bounded
        by one receive.
        """
        while not done():
            if self._buffer:
                data = self._consume(len(self._buffer))
            else:
                data = self._recv(STREAM_CHUNK, time.monotonic() + timeout)
            taken = feed(data)
            if taken < len(data):
                if not done():
                    raise RuntimeError("feed() left octets unread before it was done")
                self._buffer = bytearray(data[taken:])
                self._scanned = 0

    def has_complete_line(self) -> bool:
        """Whether a whole line is already buffered, so read_line returns without waiting."""
        return self._buffer.find(b"\n") >= 0

    def has_buffered_data(self) -> bool:
        """Whether the client has sent something not yet read, without waiting for it.

        Looks at our buffer, the TLS layer and the kernel's receive queue: before the greeting
        this catches a client talking first (RFC 5321 §4.3.1, the "pregreet" test). EOF also
        counts as data: the next read reports it.
        """
        if self._buffer:
            return True
        tls_sock = self._tls_sock()
        if tls_sock is not None and tls_sock.pending():
            return True
        return self._kernel_readable()

    def wait_for_data(self, timeout: float) -> bool:
        """Wait up to `timeout` for the client to send something, without consuming it."""
        if self.has_buffered_data():
            return True
        try:
            gevent.socket.wait_read(self.sock.fileno(), timeout)
        except TimeoutError:
            return False
        except OSError:
            return True  # the next read reports what went wrong
        return True

    def pending_plaintext(self) -> bool:
        """Whether bytes received before TLS are waiting: start_tls() will drop them."""
        return not self.tls and bool(self._buffer)

    # -- writing and TLS -------------------------------------------------------------------

    def write(self, data: bytes, timeout: float = DEFAULT_WRITE_TIMEOUT) -> None:
        """Send all of `data`. `timeout` bounds each STREAM_CHUNK, not the whole call."""
        view = memoryview(data)
        with self._write_lock:
            try:
                for start in range(0, len(view), STREAM_CHUNK):
                    self._send_chunk(view[start : start + STREAM_CHUNK], timeout)
            except TimeoutError:
                raise Timeout("write timed out: the client is not reading") from None
            except (OSError, ValueError) as exc:  # ValueError: the socket was closed under us
                raise ConnectionClosed(f"write failed: {_describe(exc)}") from None

    def _send_chunk(self, chunk: memoryview, timeout: float) -> None:
        """All of `chunk` within `timeout` seconds. One send() usually takes a whole reply;
        sendall() is left for the rest, since it costs a getsockopt() per call."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        sent = self.sock.send(chunk)  # waits up to `timeout` while the client's window is full
        if sent < len(chunk):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("write timed out")
            self.sock.settimeout(remaining)
            self.sock.sendall(chunk[sent:])

    def start_tls(self, ctx: ssl.SSLContext | None = None, timeout: float = HANDSHAKE_TIMEOUT) -> None:
        """Throw away buffered plaintext, then run the server side of the TLS handshake.

        Call after writing the "ready to start TLS" reply. On failure the connection is
        unusable: raises Timeout or ConnectionClosed and the caller just returns. The session
        must then forget everything it learned before TLS (RFC 3207 §4.2).
        """
        if self.tls:
            raise ConnectionClosed("TLS is already active")
        ctx = ctx or self.ssl_context
        if ctx is None:
            raise ValueError("no SSL context for start_tls")
        if self._buffer:
            self.log.info("discarded %d octets sent before the TLS handshake", len(self._buffer))
            self._buffer.clear()
            self._scanned = 0
        try:
            # gevent's SSLSocket works with any SSLContext, and cooperates with the hub.
            tls_sock = gevent.ssl.SSLSocket(
                sock=self.sock, server_side=True, do_handshake_on_connect=False, _context=ctx
            )
        except (OSError, ValueError) as exc:
            raise ConnectionClosed(f"TLS setup failed: {_describe(exc)}") from None
        self.sock = tls_sock
        tls_sock.settimeout(timeout)
        try:
            with gevent.Timeout(timeout, Timeout("TLS handshake timed out")):
                tls_sock.do_handshake()
        except TimeoutError:
            raise Timeout("TLS handshake timed out") from None
        except (OSError, ValueError) as exc:
            raise ConnectionClosed(f"TLS handshake failed: {_describe(exc)}") from None
        self.tls = True

    def tls_version(self) -> str | None:
        """E.g. "TLSv1.3"; None without TLS. For the Received header (RFC 5321 §4.4)."""
        tls_sock = self._tls_sock()
        return tls_sock.version() if tls_sock is not None else None

    def cipher(self) -> str | None:
        """The negotiated cipher suite name, e.g. "TLS_AES_256_GCM_SHA384"; None without TLS."""
        tls_sock = self._tls_sock()
        info = tls_sock.cipher() if tls_sock is not None else None
        return str(info[0]) if info else None

    def cipher_bits(self) -> int | None:
        """Secret bits of the negotiated cipher, e.g. 256; None without TLS."""
        tls_sock = self._tls_sock()
        info = tls_sock.cipher() if tls_sock is not None else None
        return int(info[2]) if info else None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the connection; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    # -- internals -------------------------------------------------------------------------

    def _consume(self, n: int) -> bytes:
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        self._scanned = 0
        return data

    def _fill(self, deadline: float, size: int = RECV_CHUNK) -> None:
        self._buffer += self._recv(size, deadline)

    def _recv(self, size: int, deadline: float) -> bytes:
        """One recv() of at most `size` octets before `deadline`; never returns b""."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("read timed out")
        try:
            self.sock.settimeout(remaining)
            data = self.sock.recv(size)
        except TimeoutError:
            raise Timeout("read timed out") from None
        except (OSError, ValueError) as exc:
            raise ConnectionClosed(f"read failed: {_describe(exc)}") from None
        if not data:
            raise ConnectionClosed("connection closed by the client")
        return data

    def _discard_rest_of_line(self, deadline: float) -> None:
        """Drop input up to and including the next LF, keeping what follows it."""
        self._buffer.clear()
        self._scanned = 0
        while True:
            chunk = self._recv(RECV_CHUNK, deadline)
            end = chunk.find(b"\n")
            if end >= 0:
                self._buffer += chunk[end + 1 :]
                return

    def _tls_sock(self) -> gevent.ssl.SSLSocket | None:
        return self.sock if self.tls and isinstance(self.sock, gevent.ssl.SSLSocket) else None

    def _kernel_readable(self) -> bool:
        poll, pollin, pollhup, pollerr = _select
        try:
            poller = poll()
            poller.register(self.sock.fileno(), pollin | pollhup | pollerr)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return False


def _peer_of(sock: socket.socket, peer: tuple[str, int] | None) -> tuple[str, int]:
    if peer is None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            peer = sock.getpeername()
        except OSError:
            peer = None
    if not peer or not isinstance(peer, tuple):
        return ("local", 0)
    return (normalise_ip(str(peer[0])), int(peer[1]))


def _local_port(sock: socket.socket) -> int:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return 0
    try:
        return int(sock.getsockname()[1])
    except OSError:
        return 0


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
