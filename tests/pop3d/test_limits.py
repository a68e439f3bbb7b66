"""Limits: line length, bad commands, deadlines before and after login (also when the client
sends nothing or dribbles), and connections in total and per client address."""

from __future__ import annotations

import time

import gevent

from relate.pop3d.limits import Limits
from tests.pop3d.conftest import Account, Pop3Server, RawClient, ServerFactory
from tests.store.helpers import make_message

AUTOLOGOUT = b"-ERR autologout: no command for too long\r\n"


def test_autologout_default_is_at_least_ten_minutes() -> None:
    assert Limits().idle_timeout >= 600  # RFC 1939 §3
    assert Limits().auth_timeout < Limits().idle_timeout


def test_overlong_line_is_refused_and_the_session_goes_on(pop3: Pop3Server, account: Account) -> None:
    client = pop3.raw()
    reply = client.command("NOOP " + "x" * 5000)
    assert reply == b"-ERR line too long (limit 1024 octets)\r\n"
    client.login(account)
    assert client.command("STAT").startswith(b"+OK")


def test_overlong_sasl_response(pop3: Pop3Server, account: Account) -> None:
    client = pop3.raw()
    assert client.command("AUTH PLAIN") == b"+ \r\n"
    assert client.command("A" * 20_000) == b"-ERR response too long\r\n"
    client.login(account)


def test_too_many_bad_commands_close_the_connection(make_server: ServerFactory) -> None:
    server = make_server(Limits(max_bad_commands=3))
    client = server.raw()
    assert client.command("FOO") == b"-ERR unknown command\r\n"
    assert client.command("STAT") == b"-ERR STAT is not allowed in the AUTHORIZATION state\r\n"
    assert client.command("BAR") == b"-ERR unknown command; too many bad commands, closing\r\n"
    assert client.at_eof()


def test_errors_about_messages_are_not_bad_commands(make_server: ServerFactory, account: Account) -> None:
    server = make_server(Limits(max_bad_commands=2))
    client = server.raw_login(account)
    for _ in range(5):
        assert client.command("RETR 7") == b"-ERR no message 7\r\n"
    assert client.command("NOOP") == b"+OK\r\n"


def test_idle_timeout_after_login_when_the_client_sends_nothing(make_server: ServerFactory,
                                                                 account: Account) -> None:
    server = make_server(Limits(idle_timeout=0.5))
    uid = account.deliver(make_message("stays"))
    client = server.raw_login(account)
    client.command("DELE 1")
    started = time.monotonic()
    assert client.line() == AUTOLOGOUT
    assert client.at_eof()
    assert 0.4 < time.monotonic() - started < 5
    assert account.inbox_uids() == [uid]  # an autologout is not QUIT (RFC 1939 §3)


def test_dribbling_client_is_logged_out_on_time(make_server: ServerFactory, account: Account) -> None:
    server = make_server(Limits(idle_timeout=0.6))
    client = server.raw_login(account)
    started = time.monotonic()
    for byte in b"NOOP":  # never finishes the line
        client.send(bytes([byte]))
        gevent.sleep(0.2)
    assert client.line() == AUTOLOGOUT
    assert time.monotonic() - started < 5


def test_short_deadline_before_login(make_server: ServerFactory) -> None:
    server = make_server(Limits(auth_timeout=0.3))
    client = RawClient.open(server.port)
    assert client.line().startswith(b"+OK")
    assert client.line() == AUTOLOGOUT
    assert client.at_eof()


def test_authorization_state_has_an_overall_deadline(make_server: ServerFactory) -> None:
    server = make_server(Limits(auth_timeout=5, login_deadline=0.6))
    client = server.raw()
    started = time.monotonic()
    replies = []
    while True:
        client.send(b"CAPA\r\n")
        line = client.line()
        if line == AUTOLOGOUT:
            break
        replies.append(line)
        client.body()
        gevent.sleep(0.1)
    assert replies and time.monotonic() - started < 3


def test_connections_per_ip(make_server: ServerFactory) -> None:
    server = make_server(Network__MaxConnectionsPerIp="2")
    kept = [server.raw(tls=False), server.raw(implicit=True)]
    refused = RawClient.open(server.port)
    assert refused.line() == b"-ERR [SYS/TEMP] too many connections from 127.0.0.1; try again later\r\n"
    assert refused.at_eof()
    refused_tls = RawClient.open(server.tls_port, tls=True)
    assert refused_tls.line().startswith(b"-ERR [SYS/TEMP] too many connections from 127.0.0.1")
    other_ip = server.raw(source="127.0.0.2")
    assert other_ip.command("CAPA").startswith(b"+OK")
    kept[0].command("QUIT")
    assert kept[0].at_eof()
    for _ in range(50):  # the slot is given back once the session has ended
        retry = RawClient.open(server.port)
        if retry.line().startswith(b"+OK"):
            break
        gevent.sleep(0.05)
    else:
        raise AssertionError("the connection slot was not released")


def test_connections_in_total(make_server: ServerFactory) -> None:
    server = make_server(Network__MaxConnections="2")
    kept = [server.raw(source="127.0.0.2"), server.raw(source="127.0.0.3")]
    refused = RawClient.open(server.port, source="127.0.0.4")
    assert refused.line() == b"-ERR [SYS/TEMP] too many connections; try again later\r\n"
    assert refused.at_eof()
    assert all(c.command("CAPA").startswith(b"+OK") for c in kept)
