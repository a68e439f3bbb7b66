"""Fixtures for the POP3 daemon: a real ServiceGroup on loopback ports, users with keys, and
stdlib poplib clients (gevent-patched, so the test's blocking client lets the server run)."""

from __future__ import annotations

import functools
import os
import poplib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import update

from relate import db
from relate.config import Settings
from relate.db.models import MessageBody
from relate.pop3d.limits import Limits
from relate.pop3d.service import refuse
from relate.pop3d.session import serve
from relate.pop3d.state import Pop3Config
from relate.protocol.server import Listener, ServiceGroup
from relate.store import Envelope, accounts, keys, mailboxes, messages
from tests.conftest import make_settings
from tests.pop3d.tricky import on_the_wire
from tests.protocol.conftest import Client, insecure_context

PASSWORD_USER = "alice@pop.test"


@dataclass
class Account:
    user_id: int
    address: str
    key: str  # an API key with the pop3 scope

    def deliver(self, raw: bytes) -> int:
        """Deliver to this account's INBOX; returns the new UID."""
        done = messages.deliver(raw, Envelope("sender@elsewhere.test", (self.address,)))
        return next(uid for user, _, uid in done.entries if user == self.user_id)

    def append(self, raw: bytes) -> int:
        inbox = mailboxes.get_mailbox(self.user_id, "INBOX")
        return messages.append(self.user_id, inbox.id, raw)[1].uid

    def inbox_uids(self) -> list[int]:
        inbox = mailboxes.get_mailbox(self.user_id, "INBOX")
        return [e.uid for e in messages.list_entries(self.user_id, inbox.id)]

    def seen_uids(self) -> list[int]:
        inbox = mailboxes.get_mailbox(self.user_id, "INBOX")
        return [e.uid for e in messages.list_entries(self.user_id, inbox.id) if e.seen]


def forget_wire_sizes(body_ids: list[int]) -> None:
    """Make bodies look stored before alembic 0009, without their POP3 size."""
    with db.get_engine().begin() as conn:
        conn.execute(update(MessageBody).where(MessageBody.id.in_(body_ids)).values(wire_size=None))


def make_account(address: str = PASSWORD_USER, scopes: str = "pop3") -> Account:
    user = accounts.create_user(address)
    _, key = keys.create_key(user.id, "pop3 test", scopes)
    return Account(user.id, user.primary_address, key)


@pytest.fixture
def account(store: Settings) -> Account:
    return make_account()


class RawClient(Client):
    """A byte-level POP3 client: sees exactly what the server sends, dot-stuffing included."""

    @classmethod
    def open(cls, port: int, *, tls: bool = False, source: str = "127.0.0.1") -> RawClient:
        client = cls.connect(port, source=source, timeout=10)
        if tls:
            client.start_tls()
        return client

    def start_tls(self) -> None:
        self.sock = insecure_context().wrap_socket(self.sock)

    def command(self, line: str | bytes) -> bytes:
        """Send one command line; return the status line (with CRLF)."""
        self.send(line.encode() + b"\r\n" if isinstance(line, str) else line)
        return self.line()

    def body(self) -> bytes:
        """The rest of a multi-line response, as sent (still dot-stuffed), without the final ".CRLF"."""
        start = 0
        while True:
            if self.buffer.startswith(b".\r\n"):
                self.buffer = self.buffer[3:]
                return b""
            end = self.buffer.find(b"\r\n.\r\n", start)
            if end >= 0:
                body, self.buffer = self.buffer[: end + 2], self.buffer[end + 5 :]
                return body
            start = max(0, len(self.buffer) - 4)
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("connection closed inside a multi-line response")
            self.buffer += chunk

    def multiline(self, line: str) -> tuple[bytes, bytes]:
        status = self.command(line)
        assert status.startswith(b"+OK"), status
        return status, self.body()

    def login(self, account: Account) -> None:
        assert self.command(f"USER {account.address}").startswith(b"+OK")
        status = self.command(f"PASS {account.key}")
        assert status.startswith(b"+OK"), status


def unstuff(body: bytes) -> bytes:
    """Undo dot-stuffing the way a client does (RFC 1939 §3)."""
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in body.split(b"\r\n"))


def assert_exact_sizes(client: RawClient, raws: list[bytes]) -> None:
    """STAT, LIST, LIST n and every RETR of a maildrop holding `raws` (in UID order): each
    size is the octets of what RETR sends, which is the stored message in its wire form."""
    sent = [on_the_wire(raw) for raw in raws]
    assert client.command("STAT") == f"+OK {len(sent)} {sum(map(len, sent))}\r\n".encode()
    _, listing = client.multiline("LIST")
    assert listing == b"".join(f"{n} {len(m)}\r\n".encode() for n, m in enumerate(sent, start=1))
    for number, expected in enumerate(sent, start=1):
        assert client.command(f"LIST {number}") == f"+OK {number} {len(expected)}\r\n".encode()
        status, body = client.multiline(f"RETR {number}")
        assert status == f"+OK {len(expected)} octets\r\n".encode(), number
        assert unstuff(body) == expected, number


@dataclass
class Pop3Server:
    settings: Settings
    group: ServiceGroup
    port: int  # plaintext with STLS
    tls_port: int  # implicit TLS
    clients: list[poplib.POP3] = field(default_factory=list)

    def plain(self) -> poplib.POP3:
        client = poplib.POP3("127.0.0.1", self.port, timeout=10)
        self.clients.append(client)
        return client

    def stls(self) -> poplib.POP3:
        client = self.plain()
        client.stls(insecure_context())
        return client

    def implicit_tls(self) -> poplib.POP3_SSL:
        client = poplib.POP3_SSL("127.0.0.1", self.tls_port, timeout=10, context=insecure_context())
        self.clients.append(client)
        return client

    def login(self, account: Account) -> poplib.POP3:
        client = self.stls()
        client.user(account.address)
        client.pass_(account.key)
        return client

    def raw(self, *, tls: bool = True, implicit: bool = False, source: str = "127.0.0.1") -> RawClient:
        """A raw client after the greeting: over STLS (default), plaintext, or port 995."""
        if implicit:
            client = RawClient.open(self.tls_port, tls=True, source=source)
            assert client.line().startswith(b"+OK")
            return client
        client = RawClient.open(self.port, source=source)
        assert client.line().startswith(b"+OK")
        if tls:
            assert client.command("STLS").startswith(b"+OK")
            client.start_tls()
        return client

    def raw_login(self, account: Account, *, implicit: bool = False) -> RawClient:
        client = self.raw(implicit=implicit)
        client.login(account)
        return client


ServerFactory = Callable[..., Pop3Server]


def start_server(database_url: str, data_dir: Path, limits: Limits | None = None, **env: str) -> Pop3Server:
    """A running POP3 ServiceGroup (in this process) on free ports; `env` are extra variables."""
    settings = make_settings(
        database_url, data_dir, Database__AutoMigrate="false", Network__BindAddress="127.0.0.1",
        Pop3__ServerName="pop.relate.test", **env,
    )
    handler = functools.partial(serve, Pop3Config.from_settings(settings, limits))
    group = ServiceGroup(settings)
    group.add(Listener("pop3", 0, False, handler, refuse=refuse, protocol="pop3"))
    group.add(Listener("pop3s", 0, True, handler, refuse=refuse, protocol="pop3"))
    group.start()
    return Pop3Server(settings, group, group.bound_port("pop3"), group.bound_port("pop3s"))


def stop_server(server: Pop3Server) -> None:
    for client in server.clients:
        try:
            client.close()
        except OSError:
            pass
    server.group.stop(0)


@pytest.fixture
def make_server(store: Settings, tmp_path: Path) -> Iterator[ServerFactory]:
    """Factory: start_server on the test's store (SQLite and PostgreSQL)."""
    started: list[Pop3Server] = []

    def make(limits: Limits | None = None, **env: str) -> Pop3Server:
        server = start_server(store.database_url, tmp_path, limits, **env)
        started.append(server)
        return server

    yield make
    for server in started:
        stop_server(server)


@pytest.fixture
def pop3(make_server: ServerFactory) -> Pop3Server:
    return make_server()


REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    """`python -m relate.pop3d` running in its own process."""

    process: subprocess.Popen[bytes]
    port: int
    tls_port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no goodbye, no cleanup; the operating system closes its sockets."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM: the graceful stop; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)
        return int(self.process.returncode)


def start_daemon(database_url: str, data_dir: Path, **env: str) -> Daemon:
    """Start the daemon against `database_url` on free loopback ports; wait until it listens."""
    port, tls_port = free_port(), free_port()
    variables = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ConnectionStrings__DefaultConnection": database_url,
        "Database__AutoMigrate": "false",
        "Data__Directory": str(data_dir),
        "Network__BindAddress": "127.0.0.1",
        "Pop3__Port": str(port),
        "Pop3__SecurePort": str(tls_port),
        "Network__ShutdownGraceSeconds": "2",
        **env,
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "pop3d.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "relate.pop3d"], cwd=REPO, env=variables, stdout=log_file, stderr=log_file
        )
    daemon = Daemon(process, port, tls_port, log_path)
    deadline = time.monotonic() + 30
    while "pop3s listening on" not in daemon.log():
        if process.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            raise AssertionError(f"relate.pop3d did not start:\n{daemon.log()}")
        time.sleep(0.05)
    return daemon


@pytest.fixture
def daemons() -> Iterator[Callable[..., Daemon]]:
    """Factory for daemon processes; every one is killed at the end of the test."""
    started: list[Daemon] = []

    def start(database_url: str, data_dir: Path, **env: str) -> Daemon:
        daemon = start_daemon(database_url, data_dir, **env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()
