"""STARTTLS (RFC 3207): plaintext pipelined after it is thrown away, and the session starts over."""

from __future__ import annotations

import pytest

from tests.smtpd.conftest import Server, Smtp, World, client_context, stored

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.mark.parametrize("listener", ["submission", "mx"])
def test_commands_injected_after_starttls_are_discarded(server: Server, world: World, listener: str) -> None:
    smtp = Smtp.connect(getattr(server, listener))
    smtp.ehlo()
    # The injected commands travel in the same packet as STARTTLS, in plaintext.
    smtp.send(
        "STARTTLS\r\nEHLO injected.example\r\nMAIL FROM:<someone@remote.test>\r\n"
        "RCPT TO:<bob@example.test>\r\n"
    )
    assert smtp.reply() == "220 2.0.0 Ready to start TLS"
    smtp.client.sock = client_context().wrap_socket(smtp.client.sock)
    # Had the injected EHLO and MAIL run, this RCPT would be accepted.
    assert smtp.cmd("RCPT TO:<bob@example.test>") == "503 5.5.1 Send EHLO again after STARTTLS"
    smtp.ehlo()
    assert smtp.cmd("RCPT TO:<bob@example.test>") == "503 5.5.1 Need MAIL before RCPT"


def test_transaction_before_starttls_is_forgotten(server: Server, world: World) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    assert smtp.cmd("MAIL FROM:<someone@remote.test>") == "250 2.1.0 Sender OK"
    assert smtp.cmd("RCPT TO:<bob@example.test>") == "250 2.1.5 Recipient OK"
    smtp.starttls()
    smtp.ehlo()
    assert smtp.cmd("DATA") == "503 5.5.1 Need MAIL and RCPT before DATA"
    assert stored(world.bob) == []


def test_failed_handshake_ends_only_that_session(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    assert smtp.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
    smtp.send(b"this is not a TLS client hello\r\n" * 4)
    while smtp.client.sock.recv(4096):  # a TLS alert, then the server closes
        pass
    other = Smtp.connect(server.mx)
    assert other.cmd("NOOP") == "250 2.0.0 OK"


def test_tls_is_recorded_and_the_session_works(server: Server, world: World) -> None:
    client = server.smtp(server.mx)
    assert client.sock.version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[union-attr]
    client.sendmail("someone@remote.test", ["bob@example.test"], b"Subject: tls\r\n\r\nhi\r\n")
    client.quit()
    received = stored(world.bob)[0]
    assert b"\t(using TLSv1." in received and b" with ESMTPS id " in received
