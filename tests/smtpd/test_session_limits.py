"""Limits: recipients, line length, errors, the RFC 5321 §4.5.3.2 timeouts, connections in
total and per IP, and a graceful shutdown."""

from __future__ import annotations

from collections.abc import Callable

import gevent
import pytest

from relate.smtpd.state import MAX_ERRORS, Timeouts
from tests.protocol.conftest import Client
from tests.smtpd.conftest import Server, Smtp, World, client_context, stored

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

TIMEOUT = "421 4.4.2 Timeout exceeded, closing connection"


def test_too_many_recipients(smtp_server: Callable[..., Server], world: World) -> None:
    server = smtp_server(smtp={"max_recipients": 2})
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    smtp.cmd("MAIL FROM:<someone@remote.test>")
    assert smtp.cmd("RCPT TO:<bob@example.test>") == "250 2.1.5 Recipient OK"
    assert smtp.cmd("RCPT TO:<carol@other.test>") == "250 2.1.5 Recipient OK"
    assert smtp.cmd("RCPT TO:<alice@example.test>") == "452 4.5.3 Too many recipients"
    assert smtp.data(b"Subject: two\r\n\r\nhi\r\n.\r\n") == "250 2.6.0 Message accepted"
    assert len(stored(world.bob)) == 1 and len(stored(world.carol)) == 1 and stored(world.alice) == []


def test_command_line_length(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    assert smtp.cmd("NOOP " + "x" * 993) == "250 2.0.0 OK"  # 1000 octets with CRLF
    assert smtp.cmd("NOOP " + "x" * 994) == "500 5.5.2 Line too long"
    assert smtp.cmd("NOOP " + "x" * 100_000) == "500 5.5.2 Line too long"
    assert smtp.cmd("NOOP") == "250 2.0.0 OK"


def test_repeated_errors_end_the_session(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    for _ in range(MAX_ERRORS - 1):
        assert smtp.cmd("FOO") == "500 5.5.1 Command not recognized"
    smtp.send("FOO\r\n")
    assert smtp.reply_lines() == ["500 5.5.1 Command not recognized"]
    assert smtp.reply() == "421 4.7.0 Too many errors, closing connection"
    assert smtp.at_eof()


def test_idle_client_times_out(smtp_server: Callable[..., Server]) -> None:
    server = smtp_server(timeouts=Timeouts(command=0.3))
    smtp = Smtp.connect(server.mx)
    assert smtp.reply() == TIMEOUT
    assert smtp.at_eof()


def test_stalled_data_times_out(smtp_server: Callable[..., Server], world: World) -> None:
    server = smtp_server(timeouts=Timeouts(data_block=0.3))
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    smtp.cmd("MAIL FROM:<someone@remote.test>")
    smtp.cmd("RCPT TO:<bob@example.test>")
    assert smtp.cmd("DATA").startswith("354 ")
    smtp.send("Subject: never finished\r\n\r\nhalf a mess")
    assert smtp.reply() == TIMEOUT
    assert smtp.at_eof()
    assert stored(world.bob) == []


def test_stalled_bdat_times_out(smtp_server: Callable[..., Server]) -> None:
    server = smtp_server(timeouts=Timeouts(data_block=0.3))
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    smtp.cmd("MAIL FROM:<someone@remote.test>")
    smtp.cmd("RCPT TO:<bob@example.test>")
    smtp.send("BDAT 100 LAST\r\nonly a little")
    assert smtp.reply() == TIMEOUT


def test_stalled_auth_times_out(smtp_server: Callable[..., Server]) -> None:
    server = smtp_server(timeouts=Timeouts(sasl=0.3))
    smtp = Smtp.connect(server.submissions, implicit_tls=True)
    smtp.ehlo()
    assert smtp.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6"
    assert smtp.reply() == TIMEOUT


def test_connections_per_ip(smtp_server: Callable[..., Server]) -> None:
    server = smtp_server(max_connections_per_ip=2)
    first, second = Smtp.connect(server.mx), Smtp.connect(server.submission)
    third = Client.connect(server.mx)
    assert third.line() == b"421 4.7.0 Too many connections, try again later\r\n"
    assert third.at_eof()
    other_ip = Smtp.connect(server.mx, source="127.0.0.2")
    assert other_ip.cmd("NOOP") == "250 2.0.0 OK"
    first.cmd("QUIT")
    assert first.at_eof()
    gevent.sleep(0.05)
    assert Smtp.connect(server.mx).cmd("NOOP") == "250 2.0.0 OK"
    second.close()


def test_connections_in_total(smtp_server: Callable[..., Server]) -> None:
    server = smtp_server(max_connections=2)
    kept = [Smtp.connect(server.mx, source="127.0.0.2"), Smtp.connect(server.mx, source="127.0.0.3")]
    refused = Client.connect(server.mx, source="127.0.0.4")
    assert refused.line() == b"421 4.7.0 Too many connections, try again later\r\n"
    assert refused.at_eof()
    for smtp in kept:
        smtp.close()


def test_implicit_tls_refusal_is_sent_over_tls(smtp_server: Callable[..., Server]) -> None:
    server = smtp_server(max_connections_per_ip=1)
    kept = Smtp.connect(server.mx)
    client = Client.connect(server.submissions)
    client.sock = client_context().wrap_socket(client.sock)
    assert client.line() == b"421 4.7.0 Too many connections, try again later\r\n"
    kept.close()


def test_shutdown_says_goodbye(smtp_server: Callable[..., Server]) -> None:
    server = smtp_server()
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    stopper = gevent.spawn(server.group.stop, 0.1)
    assert smtp.reply() == "421 4.3.2 Service shutting down, closing connection"
    assert smtp.at_eof()
    stopper.join(5)
