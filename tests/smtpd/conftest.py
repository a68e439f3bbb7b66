"""Fixtures for the SMTP session and system tests: a populated store and the real listeners.

`world` fills an empty store with users, addresses and keys; `smtp_server(...)` starts the
real SMTP listeners (submission with STARTTLS, implicit-TLS submission, MX) on free loopback
ports in this process. Clients are stdlib smtplib or the raw line client, over real sockets.
"""

from __future__ import annotations

import base64
import dataclasses
import smtplib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from relate.config import Settings
from relate.protocol import tls
from relate.protocol.server import ServiceGroup
from relate.smtpd import service
from relate.smtpd.state import Timeouts
from relate.store import accounts, keys, mailboxes, messages
from tests.protocol.conftest import Client, server_ctx, test_cert  # noqa: F401  (fixtures)

DOMAIN = "example.test"
OTHER_DOMAIN = "other.test"


@dataclass(frozen=True)
class World:
    settings: Settings
    alice: int  # alice@example.test: key `alice_key` (smtp), alias alice.alias@, pending alice.pending@
    alice_key: str
    alice_imap_key: str  # a valid key without the smtp scope
    bob: int  # bob@example.test
    bob_key: str
    carol: int  # carol@other.test, a second hosted domain
    postmaster: int  # postmaster@example.test


@pytest.fixture
def world(store: Settings) -> World:
    alice = accounts.create_user("alice@example.test", "Alice")
    accounts.add_address(alice.id, "alice.alias@example.test", confirmed=True)
    accounts.add_address(alice.id, "alice.pending@example.test", confirmed=False)
    bob = accounts.create_user("bob@example.test", "Bob")
    carol = accounts.create_user("carol@other.test", "Carol")
    postmaster = accounts.create_user("postmaster@example.test", "Postmaster")
    _, alice_key = keys.create_key(alice.id, "mail client", "smtp")
    _, alice_imap_key = keys.create_key(alice.id, "imap only", "imap")
    _, bob_key = keys.create_key(bob.id, "mail client", "smtp imap")
    settings = dataclasses.replace(
        store, smtp=dataclasses.replace(store.smtp, server_name="mail.example.test"), bind_address="127.0.0.1"
    )
    return World(settings, alice.id, alice_key, alice_imap_key, bob.id, bob_key, carol.id, postmaster.id)


@dataclass
class Server:
    group: ServiceGroup
    settings: Settings

    @property
    def submission(self) -> int:
        return self.group.bound_port(service.SUBMISSION)

    @property
    def submissions(self) -> int:
        return self.group.bound_port(service.SUBMISSIONS)

    @property
    def mx(self) -> int:
        return self.group.bound_port(service.MX)

    def smtp(self, port: int | None = None, *, starttls: bool = True, ehlo: bool = True) -> smtplib.SMTP:
        """An smtplib client on submission (STARTTLS done unless told otherwise) or `port`."""
        client = smtplib.SMTP("127.0.0.1", port or self.submission, local_hostname="client.example", timeout=10)
        if ehlo:
            client.ehlo()
            if starttls:
                client.starttls(context=client_context())
                client.ehlo()
        return client

    def mx_transaction(self, sender: str = "someone@remote.test") -> Smtp:
        """A raw client on MX after EHLO and an accepted MAIL FROM:<sender>."""
        smtp = Smtp.connect(self.mx)
        smtp.ehlo()
        assert smtp.cmd(f"MAIL FROM:<{sender}>") == "250 2.1.0 Sender OK"
        return smtp

    def smtps(self) -> smtplib.SMTP_SSL:
        """An smtplib client on implicit-TLS submission, after EHLO."""
        client = smtplib.SMTP_SSL(
            "127.0.0.1", self.submissions, local_hostname="client.example", timeout=10, context=client_context()
        )
        client.ehlo()
        return client


def client_context() -> ssl.SSLContext:
    return tls.client_context_insecure()


def with_smtp(settings: Settings, **changes: Any) -> Settings:
    """`settings` with SmtpSettings fields changed."""
    return dataclasses.replace(settings, smtp=dataclasses.replace(settings.smtp, **changes))


@pytest.fixture
def smtp_server(
    world: World, server_ctx: ssl.SSLContext  # noqa: F811
) -> Iterator[Callable[..., Server]]:
    """Factory: start the SMTP listeners for `world` (settings changed by keyword arguments:
    `smtp={...}` for SmtpSettings fields, others for Settings fields, `timeouts=Timeouts(...)`)."""
    groups: list[ServiceGroup] = []

    def start(*, smtp: dict[str, Any] | None = None, timeouts: Timeouts | None = None, **changes: Any) -> Server:
        settings = dataclasses.replace(world.settings, **changes)
        if smtp:
            settings = with_smtp(settings, **smtp)
        group = ServiceGroup(settings, server_ctx)
        ports = {service.SUBMISSION: 0, service.SUBMISSIONS: 0, service.MX: 0}
        for listener in service.listeners(settings, ports=ports, timeouts=timeouts):
            group.add(listener)
        group.start()
        groups.append(group)
        return Server(group, settings)

    yield start
    for group in groups:
        group.stop(0)


@pytest.fixture
def server(smtp_server: Callable[..., Server]) -> Server:
    """The listeners with the default settings."""
    return smtp_server()


def stored(user_id: int, mailbox: str = "INBOX") -> list[bytes]:
    """The raw messages in one of a user's mailboxes, in UID order."""
    box = mailboxes.get_mailbox(user_id, mailbox)
    return [messages.raw_message(entry.body_id) for entry in messages.list_entries(user_id, box.id)]


def message(subject: str = "Hello", sender: str = "alice@example.test", to: str = "bob@example.test",
            body: str = "Hi there.\r\n", headers: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{abs(hash((subject, body)))}@example.test>\r\n{headers}\r\n{body}"
    ).encode()


def body_of(raw: bytes) -> bytes:
    """`raw` without the Received header this server put on top."""
    assert raw.startswith(b"Received: "), raw[:80]
    end = 0
    while True:
        end = raw.index(b"\r\n", end) + 2
        if raw[end : end + 1] not in (b"\t", b" "):
            return raw[end:]


class Smtp:
    """A raw SMTP client over the line client: send exactly the bytes a test means."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @classmethod
    def connect(cls, port: int, source: str = "127.0.0.1", *, implicit_tls: bool = False) -> Smtp:
        client = Client.connect(port, source=source)
        if implicit_tls:
            client.sock = client_context().wrap_socket(client.sock)
        smtp = cls(client)
        greeting = smtp.reply()
        assert greeting.startswith("220 "), greeting
        return smtp

    def send(self, data: bytes | str) -> None:
        self.client.send(data.encode() if isinstance(data, str) else data)

    def reply_lines(self) -> list[str]:
        """One whole reply, every line without its CRLF."""
        lines = []
        while True:
            line = self.client.line()
            assert line.endswith(b"\r\n"), line
            text = line[:-2].decode("utf-8")
            lines.append(text)
            if text[3:4] != "-":
                return lines

    def reply(self) -> str:
        """The last line of the next reply, e.g. "503 5.5.1 Need MAIL before RCPT"."""
        return self.reply_lines()[-1]

    def cmd(self, line: str) -> str:
        self.send(line + "\r\n")
        return self.reply()

    def ehlo(self, name: str = "client.example") -> list[str]:
        self.send(f"EHLO {name}\r\n")
        lines = self.reply_lines()
        assert lines[0].startswith("250"), lines
        return [line[4:] for line in lines[1:]]

    def starttls(self) -> None:
        assert self.cmd("STARTTLS").startswith("220 2.0.0")
        self.client.sock = client_context().wrap_socket(self.client.sock)

    def login(self, user: str, key: str) -> None:
        token = base64.b64encode(f"\0{user}\0{key}".encode()).decode()
        reply = self.cmd(f"AUTH PLAIN {token}")
        assert reply.startswith("235 2.7.0"), reply

    def data(self, content: bytes) -> str:
        """DATA with `content` sent as is (already dot-stuffed, terminator included)."""
        reply = self.cmd("DATA")
        assert reply.startswith("354"), reply
        self.send(content)
        return self.reply()

    def at_eof(self) -> bool:
        return self.client.at_eof()

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def submitter(server: Server, world: World) -> Callable[[], Smtp]:
    """Factory: a raw client on submission, after EHLO, STARTTLS, EHLO and AUTH as alice."""

    def make() -> Smtp:
        smtp = Smtp.connect(server.submission)
        smtp.ehlo()
        smtp.starttls()
        smtp.ehlo()
        smtp.login("alice@example.test", world.alice_key)
        return smtp

    return make
