"""STLS (RFC 2595 §4): bytes pipelined after it are discarded, the session starts over after
the handshake, and it is refused where it makes no sense."""

from __future__ import annotations

from tests.pop3d.conftest import Account, Pop3Server, RawClient, ServerFactory


def test_commands_pipelined_after_stls_are_discarded(make_server: ServerFactory, account: Account) -> None:
    server = make_server(Tls__AllowInsecureAuth="true")
    client = RawClient.open(server.port)
    client.line()
    client.send(f"STLS\r\nUSER {account.address}\r\n".encode())  # one segment: the injection
    assert client.line() == b"+OK begin TLS negotiation\r\n"
    client.start_tls()
    assert client.command(f"PASS {account.key}") == b"-ERR send USER first\r\n"
    client.login(account)


def test_injected_login_does_not_log_in(pop3: Pop3Server, account: Account) -> None:
    client = RawClient.open(pop3.port)
    client.line()
    client.send(f"STLS\r\nUSER {account.address}\r\nPASS {account.key}\r\nDELE 1\r\nQUIT\r\n".encode())
    assert client.line().startswith(b"+OK")
    client.start_tls()
    assert client.command("STAT").startswith(b"-ERR")
    assert client.command("CAPA").startswith(b"+OK")


def test_user_before_stls_is_forgotten(make_server: ServerFactory, account: Account) -> None:
    server = make_server(Tls__AllowInsecureAuth="true")
    client = server.raw(tls=False)
    assert client.command(f"USER {account.address}").startswith(b"+OK")
    assert client.command("STLS").startswith(b"+OK")
    client.start_tls()
    assert client.command(f"PASS {account.key}") == b"-ERR send USER first\r\n"


def test_stls_refused_when_already_tls_or_logged_in(pop3: Pop3Server, account: Account) -> None:
    client = pop3.raw()
    assert client.command("STLS") == b"-ERR TLS is already active\r\n"
    implicit = pop3.raw(implicit=True)
    assert implicit.command("STLS") == b"-ERR TLS is already active\r\n"
    client.login(account)
    assert client.command("STLS") == b"-ERR STLS is not allowed in the TRANSACTION state\r\n"
    assert client.command("NOOP") == b"+OK\r\n"


def test_failed_handshake_ends_only_that_session(pop3: Pop3Server, account: Account) -> None:
    client = RawClient.open(pop3.port)
    client.line()
    assert client.command("STLS").startswith(b"+OK")
    client.send(b"this is not a TLS ClientHello\r\n")
    assert client.at_eof()
    pop3.raw_login(account).command("QUIT")
