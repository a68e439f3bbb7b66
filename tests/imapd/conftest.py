"""Fixtures for the IMAP daemon: a real ServiceGroup on loopback ports, users with keys, and
clients (imaplib, IMAPClient, a raw line client). The process is gevent-patched, so a test's
blocking client lets the server greenlets run."""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from relate.config import Settings
from relate.imapd.selected import recent_claims
from relate.imapd.service import handler, refuse
from relate.protocol.server import Listener, ServiceGroup
from relate.store import Envelope, accounts, keys, mailboxes, messages
from tests.conftest import make_settings
from tests.protocol.conftest import Client, insecure_context, make_cert

ALICE = "alice@imap.test"
BOB = "bob@imap.test"


def simple_message(subject: str = "hello", body: str = "Hi there.\r\n", sender: str = "carol@elsewhere.test",
                   to: str = ALICE) -> bytes:
    return (
        f"From: Carol <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 06 Jan 2025 10:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '.')}@elsewhere.test>\r\n"
        f"\r\n{body}"
    ).encode()


@dataclass
class Account:
    user_id: int
    address: str
    key: str  # an API key with the imap scope

    def mailbox(self, name: str = "INBOX") -> int:
        return mailboxes.get_mailbox(self.user_id, name).id

    def deliver(self, raw: bytes | None = None) -> int:
        """Deliver over the store (as the SMTP daemon does) to INBOX; returns the new UID."""
        done = messages.deliver(raw or simple_message(to=self.address), Envelope("carol@elsewhere.test", (self.address,)))
        return next(uid for user, _, uid in done.entries if user == self.user_id)

    def append(self, raw: bytes | None = None, mailbox: str = "INBOX", flags: tuple[str, ...] = ()) -> int:
        return messages.append(self.user_id, self.mailbox(mailbox), raw or simple_message(to=self.address), flags)[1].uid

    def uids(self, mailbox: str = "INBOX") -> list[int]:
        return [e.uid for e in messages.list_entries(self.user_id, self.mailbox(mailbox))]

    def flags(self, mailbox: str = "INBOX") -> dict[int, frozenset[str]]:
        return {e.uid: e.flags for e in messages.list_entries(self.user_id, self.mailbox(mailbox))}


def make_account(address: str = ALICE, scopes: str = "imap") -> Account:
    user = accounts.create_user(address)
    _, key = keys.create_key(user.id, "imap test", scopes)
    return Account(user.id, user.primary_address, key)


class RawClient(Client):
    """A byte-level IMAP client: sees exactly what the server sends."""

    @classmethod
    def open(cls, port: int, *, tls: bool = False) -> RawClient:
        client = cls.connect(port)
        assert isinstance(client, RawClient)
        if tls:
            client.sock = insecure_context().wrap_socket(client.sock)
        return client

    def starttls(self) -> None:
        self.sock = insecure_context().wrap_socket(self.sock)

    def command(self, line: str | bytes) -> list[bytes]:
        """Send a tagged line; return every response line up to and including the tagged one."""
        data = line.encode() if isinstance(line, str) else line
        tag = data.split(b" ", 1)[0]
        self.send(data + b"\r\n")
        return self.until(tag)

    def until(self, tag: bytes) -> list[bytes]:
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def login(self, account: Account) -> None:
        reply = self.command(f'L1 LOGIN {account.address} "{account.key}"')
        assert reply[-1].startswith(b"L1 OK"), reply


@dataclass
class ImapServer:
    settings: Settings
    group: ServiceGroup
    account: Account
    clients: list[object] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.group.bound_port("imap")

    @property
    def tls_port(self) -> int:
        return self.group.bound_port("imaps")

    def raw(self, *, tls: bool = False, greeting: bool = True) -> RawClient:
        client = RawClient.open(self.tls_port if tls else self.port, tls=tls)
        self.clients.append(client)
        if greeting:
            assert client.line().startswith(b"* OK")
        return client

    def imaplib(self, account: Account | None = None, *, tls: bool = True, login: bool = True) -> imaplib.IMAP4:
        conn: imaplib.IMAP4
        if tls:
            conn = imaplib.IMAP4_SSL("127.0.0.1", self.tls_port, ssl_context=insecure_context(), timeout=10)
        else:
            conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        self.clients.append(conn)
        if login:
            who = account or self.account
            conn.login(who.address, who.key)
        return conn

    def imapclient(self, account: Account | None = None, *, login: bool = True):  # -> imapclient.IMAPClient
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.tls_port, ssl=True, ssl_context=insecure_context(), timeout=10)
        self.clients.append(client)
        if login:
            who = account or self.account
            client.login(who.address, who.key)
        return client

    def close(self) -> None:
        for client in self.clients:
            try:
                if isinstance(client, RawClient):
                    client.close()
                elif isinstance(client, imaplib.IMAP4):
                    client.shutdown()
                else:
                    client.shutdown()  # type: ignore[attr-defined]
            except Exception:
                pass
        self.group.stop(grace=1)


@pytest.fixture(scope="session")
def imap_cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cert.pem (what real clients are told to trust) and chain.pem (key + cert, the server's)."""
    pair = make_cert("localhost")  # real clients (mbsync) check the name they connect to
    directory = tmp_path_factory.mktemp("imapctx")
    (directory / "chain.pem").write_bytes(pair.key_pem() + pair.cert_pem)
    (directory / "cert.pem").write_bytes(pair.cert_pem)
    return directory


@pytest.fixture(scope="session")
def imap_ssl_context(imap_cert_dir: Path) -> ssl.SSLContext:
    from relate.protocol import tls

    settings = make_settings("sqlite://", imap_cert_dir, Tls__CertificatePath=str(imap_cert_dir / "chain.pem"))
    return tls.server_context(settings, "imap")


def start_server(settings: Settings, ctx: ssl.SSLContext, account: Account) -> ImapServer:
    serve = handler(settings)
    group = ServiceGroup(settings, ctx)
    group.add(Listener("imap", 0, False, serve, refuse=refuse, protocol="imap"))
    group.add(Listener("imaps", 0, True, serve, refuse=refuse, protocol="imap"))
    group.start()
    return ImapServer(settings, group, account)


@pytest.fixture
def server_factory(store: Settings, tmp_path: Path, imap_ssl_context: ssl.SSLContext
                   ) -> Iterator[Callable[..., ImapServer]]:
    """Start a server with extra settings (`Tls__AllowInsecureAuth="true"`, ...)."""
    recent_claims.clear()  # mailbox ids repeat between tests (each starts from empty tables)
    started: list[ImapServer] = []
    account = make_account()

    def start(**env: str) -> ImapServer:
        base = {"Network__BindAddress": "127.0.0.1", "Database__AutoMigrate": "false"}
        settings = make_settings(store.database_url, tmp_path, **{**base, **env})
        server = start_server(settings, imap_ssl_context, account)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def server(server_factory: Callable[..., ImapServer]) -> ImapServer:
    """A server with the default security settings (no password login before TLS)."""
    return server_factory()


@pytest.fixture
def account(server: ImapServer) -> Account:
    return server.account


@pytest.fixture
def client(server: ImapServer, account: Account) -> RawClient:
    """A raw session over implicit TLS, logged in (modules that need more define their own)."""
    client = server.raw(tls=True)
    client.login(account)
    return client


def untagged(reply: list[bytes], kind: bytes) -> list[bytes]:
    """The untagged `* KIND ...` lines of a reply, without their line endings."""
    return [line.rstrip(b"\r\n") for line in reply if line.startswith(b"* " + kind + b" ")]
