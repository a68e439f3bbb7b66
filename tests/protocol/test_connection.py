"""The connection's line reader, streamed reads, writes and STARTTLS, over real loopback TCP."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import gevent
import gevent.socket
import pytest

from relate.protocol import tls
from relate.protocol.connection import (
    RECV_CHUNK,
    Connection,
    ConnectionClosed,
    Deadline,
    LineTooLong,
    Timeout,
)
from tests.protocol.conftest import wait_until

Pair = Callable[..., tuple[Connection, gevent.socket.socket]]


def buffered(conn: Connection) -> int:
    return len(conn._buffer)


# -- read_line -----------------------------------------------------------------------------


def test_reads_one_line_with_its_terminator(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    client.sendall(b"EHLO client.example\r\n")
    assert conn.read_line(512, 2) == b"EHLO client.example\r\n"


def test_pipelined_lines_in_one_packet(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    client.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
    assert [conn.read_line(512, 2) for _ in range(3)] == [
        b"MAIL FROM:<a@x>\r\n",
        b"RCPT TO:<b@y>\r\n",
        b"DATA\r\n",
    ]
    assert not conn.has_buffered_data()


def test_lf_only_and_bare_cr(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    client.sendall(b"NOOP\nA\rB\r\n")
    assert conn.read_line(512, 2) == b"NOOP\n"
    assert conn.read_line(512, 2) == b"A\rB\r\n"  # a bare CR does not end a line


def test_crlf_split_across_receives(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    reader = gevent.spawn(conn.read_line, 512, 3)
    client.sendall(b"QUIT\r")
    wait_until(lambda: buffered(conn) == 5)
    assert not reader.ready()
    client.sendall(b"\nNEXT\r\n")
    assert reader.get(timeout=3) == b"QUIT\r\n"
    assert conn.read_line(512, 2) == b"NEXT\r\n"


def test_line_trickled_byte_by_byte(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    reader = gevent.spawn(conn.read_line, 512, 3)
    for sent, byte in enumerate(b"RSET\r\n", start=1):
        client.sendall(bytes([byte]))
        if sent < 6:
            wait_until(lambda: buffered(conn) == sent)  # noqa: B023 - called before the loop moves on
    assert reader.get(timeout=3) == b"RSET\r\n"


def test_line_of_exactly_max_length_is_accepted(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    client.sendall(b"x" * 8 + b"\r\n" + b"y" * 9 + b"\r\n")
    assert conn.read_line(10, 2) == b"x" * 8 + b"\r\n"
    with pytest.raises(LineTooLong):
        conn.read_line(10, 2)


def test_too_long_line_in_buffer_then_next_line_fine(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    client.sendall(b"A" * 50 + b"\r\nNOOP\r\n")
    with pytest.raises(LineTooLong):
        conn.read_line(20, 2)
    assert conn.read_line(20, 2) == b"NOOP\r\n"


def test_too_long_line_over_many_packets_is_discarded_with_bounded_memory(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    peak = 0
    real_recv = conn._recv

    def recv(size: int, deadline: float) -> bytes:
        nonlocal peak
        data = real_recv(size, deadline)
        peak = max(peak, buffered(conn) + len(data))
        return data

    conn._recv = recv  # type: ignore[method-assign]
    sender = gevent.spawn(client.sendall, b"B" * 1_000_000 + b"\r\nNOOP\r\n")
    with pytest.raises(LineTooLong):
        conn.read_line(100, 5)
    assert conn.read_line(100, 2) == b"NOOP\r\n"
    sender.get(timeout=2)
    assert peak <= 100 + RECV_CHUNK


def test_timeout_when_nothing_arrives(tcp_pair: Pair) -> None:
    conn, _client = tcp_pair()
    started = time.monotonic()
    with pytest.raises(Timeout):
        conn.read_line(512, 0.05)
    assert time.monotonic() - started < 1


def test_timeout_covers_the_whole_line_not_each_packet(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()

    def trickle() -> None:
        for _ in range(100):
            client.sendall(b"x")
            gevent.sleep(0.01)

    sender = gevent.spawn(trickle)
    started = time.monotonic()
    with pytest.raises(Timeout):
        conn.read_line(512, 0.15)
    assert time.monotonic() - started < 0.5
    sender.kill()


def test_eof_mid_line(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    client.sendall(b"PARTIAL")
    client.shutdown(socket.SHUT_WR)
    with pytest.raises(ConnectionClosed):
        conn.read_line(512, 2)


def test_eof_between_lines(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    client.sendall(b"QUIT\r\n")
    client.close()
    assert conn.read_line(512, 2) == b"QUIT\r\n"
    with pytest.raises(ConnectionClosed):
        conn.read_line(512, 2)


def test_reset_is_connection_closed(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()  # linger 0: RST
    with pytest.raises(ConnectionClosed):
        conn.read_line(512, 2)


# -- streamed and exact reads ------------------------------------------------------------------


def test_read_exact_takes_buffered_bytes_first(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    client.sendall(b"a1 APPEND INBOX {11}\r\nHello")
    assert conn.read_line(512, 2) == b"a1 APPEND INBOX {11}\r\n"
    reader = gevent.spawn(conn.read_exact, 11, 3)
    client.sendall(b" World\r\n")
    assert reader.get(timeout=3) == b"Hello World"
    assert conn.read_line(512, 2) == b"\r\n"


def test_read_exact_timeout(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    client.sendall(b"abc")
    with pytest.raises(Timeout):
        conn.read_exact(10, 0.05)


def test_read_chunks_streams_without_overreading(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    payload = bytes(range(256)) * 4096  # 1 MiB
    sender = gevent.spawn(client.sendall, b"BDAT 1048576 LAST\r\n" + payload + b"QUIT\r\n")
    assert conn.read_line(512, 2) == b"BDAT 1048576 LAST\r\n"
    chunks = list(conn.read_chunks(len(payload), 3, chunk_size=65536))
    assert b"".join(chunks) == payload
    assert max(len(c) for c in chunks) <= max(65536, RECV_CHUNK)
    assert conn.read_line(512, 2) == b"QUIT\r\n"
    sender.get(timeout=2)


def test_read_into_sink(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    client.sendall(b"0123456789tail\r\n")
    got: list[bytes] = []
    conn.read_into(10, got.append, 2)
    assert b"".join(got) == b"0123456789"
    assert conn.read_line(512, 2) == b"tail\r\n"


def test_read_chunks_eof_before_the_end(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    client.sendall(b"short")
    client.close()
    with pytest.raises(ConnectionClosed):
        list(conn.read_chunks(100, 2))


# -- talking first, writes, misc -----------------------------------------------------------------


def test_has_buffered_data_sees_the_kernel_queue(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    assert not conn.has_buffered_data()
    assert not conn.wait_for_data(0.02)
    client.sendall(b"EHLO too-early\r\n")
    assert conn.wait_for_data(2)
    assert conn.has_buffered_data()
    assert conn.read_line(512, 2) == b"EHLO too-early\r\n"


def test_write_and_close(tcp_pair: Pair) -> None:
    conn, client = tcp_pair()
    conn.write(b"220 ready\r\n" + b"x" * 200_000)
    received = b""
    while len(received) < 200_011:
        received += client.recv(65536)
    assert received.startswith(b"220 ready\r\n")
    conn.close()
    conn.close()  # idempotent
    assert conn.closed
    assert client.recv(10) == b""
    with pytest.raises(ConnectionClosed):
        conn.write(b"late\r\n")


def test_write_to_a_slow_reader_arrives_whole(tcp_pair: Pair) -> None:
    # A small send buffer: the first send() takes part of each chunk, the rest follows as
    # the client reads, all within the write's timeout.
    conn, client = tcp_pair()
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    payload = bytes(range(256)) * 2000  # 512,000 octets, several STREAM_CHUNKs

    def read_slowly() -> bytes:
        received = bytearray()
        while len(received) < len(payload):
            received += client.recv(8192)
            gevent.sleep(0.001)
        return bytes(received)

    reader = gevent.spawn(read_slowly)
    conn.write(payload, timeout=10)
    assert reader.get(timeout=10) == payload


def test_write_timeout_when_client_never_reads(tcp_pair: Pair) -> None:
    conn, _client = tcp_pair()
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    with pytest.raises(Timeout):
        conn.write(b"x" * 20_000_000, timeout=0.1)


def test_identity_fields(tcp_pair: Pair) -> None:
    conn, client = tcp_pair(listener_name="smtp-submission")
    assert len(conn.conn_id) == 6 and int(conn.conn_id, 16) >= 0
    assert conn.peer == client.getsockname()
    assert conn.local_port == client.getpeername()[1]
    assert conn.listener_name == "smtp-submission"
    assert not conn.tls and conn.tls_version() is None and conn.cipher() is None
    assert conn.conn_id in repr(conn)


def test_stdlib_socketpair_is_accepted() -> None:
    ours, theirs = socket.socketpair()
    conn = Connection(ours)
    peer = gevent.socket.socket(fileno=theirs.detach())
    try:
        assert conn.peer == ("local", 0) and conn.local_port == 0
        peer.sendall(b"CAPA\r\n")
        assert conn.read_line(100, 2) == b"CAPA\r\n"
    finally:
        conn.close()
        peer.close()


def test_deadline() -> None:
    deadline = Deadline(10)
    assert 9 < deadline.remaining() <= 10
    with pytest.raises(Timeout):
        Deadline(0).remaining()


# -- STARTTLS ----------------------------------------------------------------------------------


def test_starttls_discards_pipelined_plaintext(tcp_pair: Pair, server_ctx: object) -> None:
    conn, client = tcp_pair(ssl_context=server_ctx)
    seen: list[object] = []

    def server() -> bytes:
        assert conn.read_line(512, 2) == b"STARTTLS\r\n"
        seen.append(conn.pending_plaintext())
        conn.write(b"220 2.0.0 Ready to start TLS\r\n")
        conn.start_tls(timeout=3)
        seen.append(conn.pending_plaintext())
        line = conn.read_line(512, 3)
        conn.write(b"250 ok\r\n")
        return line

    session = gevent.spawn(server)
    client.sendall(b"STARTTLS\r\nNOOP\r\n")  # the NOOP is the injected command
    reply = b""
    while not reply.endswith(b"\r\n"):
        reply += client.recv(100)
    assert reply.startswith(b"220 ")
    secure = tls.client_context_insecure().wrap_socket(client)
    secure.sendall(b"EHLO after-tls\r\n")
    assert session.get(timeout=3) == b"EHLO after-tls\r\n"
    assert secure.recv(100) == b"250 ok\r\n"
    assert seen == [True, False]
    assert conn.tls
    assert conn.tls_version() in ("TLSv1.2", "TLSv1.3")
    assert conn.cipher() and (conn.cipher_bits() or 0) >= 128
    with pytest.raises(ConnectionClosed):
        conn.start_tls()  # not twice
    secure.close()


def test_starttls_handshake_timeout(tcp_pair: Pair, server_ctx: object) -> None:
    conn, _client = tcp_pair(ssl_context=server_ctx)
    started = time.monotonic()
    with pytest.raises(Timeout):
        conn.start_tls(timeout=0.1)
    assert time.monotonic() - started < 1


def test_starttls_garbage_instead_of_hello(tcp_pair: Pair, server_ctx: object) -> None:
    conn, client = tcp_pair(ssl_context=server_ctx)
    client.sendall(b"this is not a TLS ClientHello\r\n" * 4)
    with pytest.raises(ConnectionClosed):
        conn.start_tls(timeout=2)
