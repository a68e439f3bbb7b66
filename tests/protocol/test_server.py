"""ServiceGroup: listeners, implicit TLS, connection limits, handler failures, graceful stop."""

from __future__ import annotations

import errno
import logging
import os
import signal
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import gevent.event
import gevent.socket
import pytest

from relate.config import ConfigError, Settings
from relate.protocol import server as server_module
from relate.protocol import tls
from relate.protocol.connection import Connection, ServerShutdown
from relate.protocol.server import Listener, ServiceGroup, limit_key
from tests.protocol.conftest import Client, make_settings, wait_until


def echo(conn: Connection) -> None:
    conn.write(b"hello\r\n")
    while True:
        line = conn.read_line(512, 5)
        if line.strip() == b"QUIT":
            conn.write(b"bye\r\n")
            return
        conn.write(line)


def refuse_421(conn: Connection, reason: str) -> None:
    conn.write(f"421 4.7.0 {reason}\r\n".encode(), timeout=1)


@pytest.fixture
def make_group(server_ctx: ssl.SSLContext) -> Iterator[Callable[..., ServiceGroup]]:
    groups: list[ServiceGroup] = []

    def make(settings: Settings, *listeners: Listener, **kwargs: float) -> ServiceGroup:
        group = ServiceGroup(settings, server_ctx, **kwargs)
        for listener in listeners:
            group.add(listener)
        group.start()
        groups.append(group)
        return group

    yield make
    for group in groups:
        group.stop(0)


def tls_client(port: int, source: str = "127.0.0.1") -> Client:
    plain = gevent.socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    return Client(tls.client_context_insecure().wrap_socket(plain))


def test_plain_listener_on_port_zero(settings: Settings, make_group: Callable[..., ServiceGroup]) -> None:
    group = make_group(settings, Listener("smtp-submission", 0, False, echo))
    port = group.bound_port("smtp-submission")
    assert port > 0
    client = Client.connect(port)
    assert client.line() == b"hello\r\n"
    client.send(b"NOOP\r\n")
    assert client.line() == b"NOOP\r\n"
    client.send(b"QUIT\r\n")
    assert client.line() == b"bye\r\n"
    assert client.at_eof()
    wait_until(lambda: group.connection_count == 0)


def test_session_knows_its_ports_and_logger(settings: Settings, make_group: Callable[..., ServiceGroup]) -> None:
    # The listener's port and logger are looked up once, not per connection: they must still
    # be what the accepted socket and the listener's protocol say.
    seen: list[tuple[int, int, str]] = []

    def handler(conn: Connection) -> None:
        seen.append((conn.local_port, conn.sock.getsockname()[1], conn.log.logger.name))

    group = make_group(settings, Listener("smtp-mx", 0, False, handler), Listener("imap", 0, False, handler))
    for name in ("smtp-mx", "imap", "smtp-mx"):
        Client.connect(group.bound_port(name)).at_eof()
        wait_until(lambda: group.connection_count == 0)
    mx, imap = group.bound_port("smtp-mx"), group.bound_port("imap")
    assert seen == [(mx, mx, "relate.smtpd"), (imap, imap, "relate.imapd"), (mx, mx, "relate.smtpd")]


def test_implicit_tls_echo(settings: Settings, make_group: Callable[..., ServiceGroup]) -> None:
    seen: list[tuple[bool, str | None]] = []

    def handler(conn: Connection) -> None:
        seen.append((conn.tls, conn.tls_version()))
        echo(conn)

    group = make_group(settings, Listener("imap-tls", 0, True, handler))
    client = tls_client(group.bound_port("imap-tls"))
    assert client.line() == b"hello\r\n"
    client.send(b"a1 NOOP\r\n")
    assert client.line() == b"a1 NOOP\r\n"
    client.send(b"QUIT\r\n")
    assert client.line() == b"bye\r\n"
    assert seen and seen[0][0] is True and seen[0][1] in ("TLSv1.2", "TLSv1.3")


def test_starttls_context_is_handed_to_the_session(
    settings: Settings, make_group: Callable[..., ServiceGroup], server_ctx: ssl.SSLContext
) -> None:
    contexts: list[object] = []
    group = make_group(settings, Listener("pop3", 0, False, lambda conn: contexts.append(conn.ssl_context)))
    Client.connect(group.bound_port("pop3")).at_eof()
    assert contexts == [server_ctx]


def test_silent_tls_client_does_not_block_others(
    settings: Settings, make_group: Callable[..., ServiceGroup]
) -> None:
    group = make_group(settings, Listener("smtp-submissions", 0, True, echo), handshake_timeout=1.0)
    port = group.bound_port("smtp-submissions")
    silent = Client.connect(port)  # connects and never says ClientHello
    wait_until(lambda: group.connection_count == 1)
    started = time.monotonic()
    other = tls_client(port)
    assert other.line() == b"hello\r\n"
    other.send(b"QUIT\r\n")
    assert other.line() == b"bye\r\n"
    assert time.monotonic() - started < 1.0  # served while the silent one was still pending
    assert silent.at_eof()  # dropped at the handshake deadline
    wait_until(lambda: group.connection_count == 0)


def test_per_ip_limit_calls_refuse(tmp_path: Path, make_group: Callable[..., ServiceGroup]) -> None:
    settings = make_settings(tmp_path, Network__MaxConnectionsPerIp="2", Network__MaxConnections="10")
    group = make_group(settings, Listener("smtp-submission", 0, False, echo, refuse=refuse_421))
    port = group.bound_port("smtp-submission")
    first, second = Client.connect(port), Client.connect(port)
    assert first.line() == second.line() == b"hello\r\n"
    third = Client.connect(port)
    assert third.line() == b"421 4.7.0 too many connections from 127.0.0.1\r\n"
    assert third.at_eof()
    assert group.connection_count == 2
    other_ip = Client.connect(port, source="127.0.0.2")  # another client is not affected
    assert other_ip.line() == b"hello\r\n"
    first.send(b"QUIT\r\n")
    assert first.line() == b"bye\r\n"
    wait_until(lambda: group.connection_count == 2)
    again = Client.connect(port)  # a slot came free
    assert again.line() == b"hello\r\n"


def test_total_limit_spans_listeners(tmp_path: Path, make_group: Callable[..., ServiceGroup]) -> None:
    settings = make_settings(tmp_path, Network__MaxConnectionsPerIp="5", Network__MaxConnections="2")
    group = make_group(
        settings,
        Listener("pop3", 0, False, echo, refuse=lambda c, r: c.write(f"-ERR [SYS/TEMP] {r}\r\n".encode())),
        Listener("imap", 0, False, echo),
    )
    a = Client.connect(group.bound_port("pop3"), source="127.0.0.2")
    b = Client.connect(group.bound_port("imap"), source="127.0.0.3")
    assert a.line() == b.line() == b"hello\r\n"
    refused = Client.connect(group.bound_port("pop3"), source="127.0.0.4")
    assert refused.line() == b"-ERR [SYS/TEMP] too many connections\r\n"
    silent = Client.connect(group.bound_port("imap"), source="127.0.0.4")
    assert silent.at_eof()  # no refuse callback: closed without a word


def test_refusal_over_implicit_tls(tmp_path: Path, make_group: Callable[..., ServiceGroup]) -> None:
    settings = make_settings(tmp_path, Network__MaxConnectionsPerIp="1")
    group = make_group(settings, Listener("smtp-submissions", 0, True, echo, refuse=refuse_421))
    port = group.bound_port("smtp-submissions")
    kept = tls_client(port)
    assert kept.line() == b"hello\r\n"
    refused = tls_client(port)
    assert refused.line() == b"421 4.7.0 too many connections from 127.0.0.1\r\n"


def test_handler_exception_is_logged_and_server_goes_on(
    settings: Settings, make_group: Callable[..., ServiceGroup], caplog: pytest.LogCaptureFixture
) -> None:
    ids: list[str] = []

    def broken(conn: Connection) -> None:
        ids.append(conn.conn_id)
        if len(ids) == 1:
            raise RuntimeError("boom")
        echo(conn)

    group = make_group(settings, Listener("smtp-mx", 0, False, broken))
    with caplog.at_level(logging.INFO):
        assert Client.connect(group.bound_port("smtp-mx")).at_eof()
        wait_until(lambda: group.connection_count == 0)
        client = Client.connect(group.bound_port("smtp-mx"))
        assert client.line() == b"hello\r\n"
    failures = [r for r in caplog.records if "session failed" in r.getMessage()]
    assert len(failures) == 1
    assert ids[0] in failures[0].getMessage()
    assert failures[0].exc_info and "boom" in str(failures[0].exc_info[1])
    assert failures[0].name == "relate.smtpd"


def test_graceful_stop_lets_a_session_finish(settings: Settings, server_ctx: ssl.SSLContext) -> None:
    release = gevent.event.Event()
    saw_shutdown: list[bool] = []

    def slow(conn: Connection) -> None:
        conn.write(b"hello\r\n")
        conn.read_line(512, 5)
        release.wait(5)
        saw_shutdown.append(conn.shutdown.is_set())
        conn.write(b"250 done\r\n")

    group = ServiceGroup(settings, server_ctx)
    group.add(Listener("smtp-submission", 0, False, slow))
    runner = gevent.spawn(group.serve_forever)
    wait_until(lambda: bool(group._servers))
    port = group.bound_port("smtp-submission")
    client = Client.connect(port)
    assert client.line() == b"hello\r\n"
    client.send(b"DATA\r\n")
    wait_until(lambda: group.connection_count == 1)

    stopper = gevent.spawn(group.stop, 5)
    wait_until(lambda: group.stopping)
    with pytest.raises(OSError) as refused:
        gevent.socket.create_connection(("127.0.0.1", port), timeout=2)
    assert refused.value.errno == errno.ECONNREFUSED  # not accepting any more
    assert not stopper.ready()  # still waiting for the session

    started = time.monotonic()
    release.set()
    assert client.line() == b"250 done\r\n"
    assert client.at_eof()
    stopper.get(timeout=3)
    runner.get(timeout=3)
    assert time.monotonic() - started < 1  # did not sit out the grace period
    assert saw_shutdown == [True]


def test_stop_ends_sessions_after_grace(settings: Settings, server_ctx: ssl.SSLContext) -> None:
    def idle(conn: Connection) -> None:
        conn.write(b"* OK\r\n")
        try:
            conn.read_line(512, 60)
        except ServerShutdown:
            conn.write(b"* BYE shutting down\r\n")

    group = ServiceGroup(settings, server_ctx)
    group.add(Listener("imap", 0, False, idle))
    group.start()
    client = Client.connect(group.bound_port("imap"))
    assert client.line() == b"* OK\r\n"
    started = time.monotonic()
    group.stop(0.1)
    assert time.monotonic() - started < 1
    assert client.line() == b"* BYE shutting down\r\n"
    assert client.at_eof()
    assert group.connection_count == 0


def test_stop_kills_a_session_that_ignores_shutdown(
    settings: Settings, server_ctx: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "KILL_GRACE", 0.1)

    def stubborn(conn: Connection) -> None:
        conn.write(b"hi\r\n")
        try:
            conn.read_line(512, 60)
        except ServerShutdown:
            gevent.sleep(60)

    group = ServiceGroup(settings, server_ctx)
    group.add(Listener("pop3", 0, False, stubborn))
    group.start()
    client = Client.connect(group.bound_port("pop3"))
    assert client.line() == b"hi\r\n"
    started = time.monotonic()
    group.stop(0.05)
    assert time.monotonic() - started < 1
    assert client.at_eof()


def test_sigterm_stops_the_group(settings: Settings, server_ctx: ssl.SSLContext) -> None:
    group = ServiceGroup(settings, server_ctx)
    group.add(Listener("smtp-mx", 0, False, echo))
    group.install_signal_handlers()
    runner = gevent.spawn(group.serve_forever)
    wait_until(lambda: bool(group._servers))
    os.kill(os.getpid(), signal.SIGTERM)
    runner.get(timeout=3)
    assert group.stopping
    assert group._signal_handles == []  # the default disposition is back


def test_bind_error_names_the_setting(settings: Settings, make_group: Callable[..., ServiceGroup]) -> None:
    first = make_group(settings, Listener("smtp-mx", 0, False, echo))
    taken = first.bound_port("smtp-mx")
    group = ServiceGroup(settings, tls.client_context_insecure())
    group.add(Listener("smtp-submission", 0, False, echo))
    group.add(Listener("smtp-mx", taken, False, echo, setting="Smtp__MxPort"))
    with pytest.raises(ConfigError, match=f"^Smtp__MxPort={taken}: cannot listen on 127.0.0.1:{taken}"):
        group.start()
    assert group._servers == {}  # the first listener was released again


def test_listener_names_and_protocols(settings: Settings) -> None:
    group = ServiceGroup(settings)
    group.add(Listener("smtp-submission", 0, False, echo))
    with pytest.raises(ValueError):
        group.add(Listener("smtp-submission", 0, True, echo))
    assert Listener("mx", 0, False, echo, protocol="smtp").tls_protocol == "smtp"


@pytest.mark.parametrize(
    ("name", "protocol"),
    [
        ("smtp-submission", "smtp"),
        ("smtp-submissions", "smtp"),
        ("smtp-mx", "smtp"),
        ("pop3", "pop3"),
        ("pop3s", "pop3"),
        ("imap", "imap"),
        ("imaps", "imap"),
        ("echo-test", "echo"),
    ],
)
def test_protocol_from_listener_name(name: str, protocol: str) -> None:
    assert Listener(name, 0, True, echo).tls_protocol == protocol


def test_context_factory_is_asked_per_protocol(settings: Settings, server_ctx: ssl.SSLContext) -> None:
    asked: list[str] = []

    def factory(protocol: str) -> ssl.SSLContext:
        asked.append(protocol)
        return server_ctx

    group = ServiceGroup(settings, factory)
    for name in ("smtp-submission", "smtp-submissions", "imaps", "pop3"):
        group.add(Listener(name, 0, name.endswith("s"), echo))
    group.start()
    group.stop(0)
    assert asked == ["smtp", "imap", "pop3"]


def test_default_contexts_come_from_settings(settings: Settings) -> None:
    group = ServiceGroup(settings)  # no context given: self-signed under the data directory
    group.add(Listener("pop3-tls", 0, True, echo))
    group.start()
    try:
        client = tls_client(group.bound_port("pop3-tls"))
        assert client.line() == b"hello\r\n"
    finally:
        group.stop(0)
    assert (settings.data_dir / "tls" / "selfsigned.crt").exists()


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        pytest.param("192.0.2.7", "192.0.2.7", id="ipv4"),
        pytest.param("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64", id="ipv6-per-64"),
        pytest.param("local", "local", id="not-an-address"),
        pytest.param("999.0.2.7", "999.0.2.7", id="not-an-ipv4-address"),
        pytest.param("not:an:address", "not:an:address", id="not-an-ipv6-address"),
    ],
)
def test_limit_key(ip: str, key: str) -> None:
    assert limit_key(ip) == key
