"""Real POP3 clients, fetchmail and getmail6, download a mailbox of tricky messages (dots,
bare LFs, no final newline, 8-bit and binary-looking bodies, a 10 MB attachment) and write
them to files, which must hold exactly what the store holds (relate.message.crlf's rules).

fetchmail delivers through an MDA that writes each message unchanged (`invisible`, `no
stripcr`, `no rewrite` keep fetchmail from adding or changing anything), so the files must
equal the CRLF wire form byte for byte. getmail6 always adds a Return-Path line and writes
LF line endings through Python's email package, which reads a lone CR as a line break; its
files must equal the wire form with LF endings, and messages with a lone CR (checked
byte-exactly through fetchmail) must at least arrive.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pop3d.conftest import Account, Pop3Server
from tests.pop3d.tricky import has_lone_cr, on_the_wire, tricky_messages
from tests.store.helpers import make_message

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SERVER_NAME = "pop.relate.test"  # in the generated certificate; the clients verify it


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"!!! {tool} is not installed (deploy/install-deps.sh test): real-client test skipped !!!")
    return path


@pytest.fixture
def mailbox(account: Account) -> list[bytes]:
    raws = [raw for _, raw in tricky_messages(big=True)]
    for raw in raws:
        account.append(raw)
    return raws


def certificate(server: Pop3Server) -> Path:
    return server.settings.data_dir / "tls" / "selfsigned.crt"


# -- fetchmail -----------------------------------------------------------------------------


class Fetchmail:
    def __init__(self, tmp_path: Path, server: Pop3Server, account: Account, implicit_tls: bool):
        self.binary = need("fetchmail")
        self.home = tmp_path / "fetchmail"
        self.out = self.home / "out"
        self.out.mkdir(parents=True)
        self.mda = self.home / "mda.sh"
        # fetchmail pipes each message to the MDA; it is written to the next numbered file.
        self.mda.write_text(f'#!/bin/sh\nn=$(ls "{self.out}" | wc -l)\ncat > "{self.out}/$(printf %03d "$n")"\n')
        self.mda.chmod(0o755)
        self.server, self.account, self.implicit_tls = server, account, implicit_tls

    def run(self, *, keep: bool, fetchall: bool = False) -> int:
        port = self.server.tls_port if self.implicit_tls else self.server.port
        tls = "ssl" if self.implicit_tls else "sslproto 'TLS1.2+'"  # the latter: STLS, required
        rc = self.home / "fetchmailrc"
        rc.write_text(
            "set no syslog\nset invisible\nset no bouncemail\n"
            f"poll {SERVER_NAME} via 127.0.0.1 port {port} proto pop3 uidl\n"
            f'  user "{self.account.address}" there with password "{self.account.key}" is "{getpass.getuser()}" here\n'
            f'  {tls} sslcertck sslcertfile "{certificate(self.server)}" sslcommonname "{SERVER_NAME}"\n'
            f'  mda "{self.mda}"\n'
            f"  {'keep' if keep else 'no keep'} {'fetchall' if fetchall else ''}\n"
            "  no rewrite no stripcr pass8bits\n"
        )
        rc.chmod(0o600)
        done = subprocess.run(
            [self.binary, "-f", str(rc), "--nosyslog", "-i", str(self.home / "ids"),
             "--pidfile", str(self.home / "pid")],
            env={**os.environ, "HOME": str(self.home)}, capture_output=True, timeout=300,
        )
        self.log = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
        return done.returncode

    def files(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted(self.out.iterdir())]


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["stls", "implicit-tls"])
def test_fetchmail_downloads_byte_exact(pop3: Pop3Server, account: Account, mailbox: list[bytes],
                                        tmp_path: Path, implicit_tls: bool) -> None:
    fetchmail = Fetchmail(tmp_path, pop3, account, implicit_tls)
    # With keep and uidl fetchmail downloads with TOP n 99999999, which leaves \Seen alone.
    assert fetchmail.run(keep=True) == 0, fetchmail.log
    assert_same(fetchmail.files(), mailbox)
    assert account.seen_uids() == []

    # UIDL: a second poll finds nothing new (fetchmail's exit status 1 is "no mail").
    assert fetchmail.run(keep=True) == 1, fetchmail.log
    assert len(fetchmail.files()) == len(mailbox)

    # A new message, then a poll with fetchall (RETR) that deletes everything it fetched.
    new = make_message("after the first poll")
    account.deliver(new)
    assert fetchmail.run(keep=False, fetchall=True) == 0, fetchmail.log
    assert_same(fetchmail.files()[len(mailbox) :], [*mailbox, new])
    assert account.inbox_uids() == []


def assert_same(received: list[bytes], stored: list[bytes]) -> None:
    assert len(received) == len(stored)
    for number, (got, raw) in enumerate(zip(received, stored, strict=True), start=1):
        assert got == on_the_wire(raw), f"message {number} differs"


# -- getmail6 ------------------------------------------------------------------------------


class Getmail:
    def __init__(self, tmp_path: Path, maildir: Path, server: Pop3Server, account: Account):
        self.binary = need("getmail")
        self.dir = tmp_path / "getmail"
        self.maildir = maildir
        for sub in ("cur", "new", "tmp"):
            (self.maildir / sub).mkdir(parents=True)
        self.dir.mkdir()
        self.as_user = ""
        if os.geteuid() == 0:  # getmail refuses to deliver as root: it switches to this user
            self.as_user = "nobody"
            for path in (self.maildir, *self.maildir.iterdir()):
                shutil.chown(path, self.as_user)
        self.server, self.account = server, account

    def run(self, *, delete: bool, read_all: bool) -> int:
        rc = self.dir / "getmailrc"
        rc.write_text(
            "[retriever]\ntype = SimplePOP3SSLRetriever\n"
            f"server = 127.0.0.1\nport = {self.server.tls_port}\n"
            f"ca_certs = {certificate(self.server)}\nssl_cert_hostname = {SERVER_NAME}\n"
            f"username = {self.account.address}\npassword = {self.account.key}\n\n"
            f"[destination]\ntype = Maildir\npath = {self.maildir}/\n"
            + (f"user = {self.as_user}\n" if self.as_user else "")
            + f"\n[options]\nread_all = {str(read_all).lower()}\ndelete = {str(delete).lower()}\n"
            "delivered_to = false\nreceived = false\nverbose = 1\n"
        )
        rc.chmod(0o600)
        done = subprocess.run([self.binary, "--getmaildir", str(self.dir), "--rcfile", str(rc)],
                              capture_output=True, timeout=300)
        self.log = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
        return done.returncode

    def files(self) -> list[bytes]:
        """Delivered messages without the Return-Path line getmail always puts first."""
        return [re.sub(rb"\AReturn-Path: [^\n]*\n", b"", p.read_bytes()) for p in (self.maildir / "new").iterdir()]


@pytest.fixture
def maildir(tmp_path: Path) -> Iterator[Path]:
    """Where getmail delivers. As root it delivers as "nobody", which must be able to reach it,
    so it cannot live under pytest's private temporary directory."""
    if os.geteuid() != 0:
        yield tmp_path / "Maildir"
        return
    top = Path(tempfile.mkdtemp(prefix="relate-getmail-"))
    top.chmod(0o755)
    try:
        yield top / "Maildir"
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_getmail_downloads_exact(pop3: Pop3Server, account: Account, mailbox: list[bytes], tmp_path: Path,
                                 maildir: Path) -> None:
    getmail = Getmail(tmp_path, maildir, pop3, account)
    assert getmail.run(delete=False, read_all=False) == 0, getmail.log
    got = getmail.files()
    assert len(got) == len(mailbox), getmail.log
    for number, raw in enumerate(mailbox, start=1):
        message_id = re.search(rb"Message-ID: <[^>]+>", raw)
        assert message_id is not None
        if has_lone_cr(raw):
            assert any(message_id.group() in g for g in got), f"message {number} missing"
        else:
            assert on_the_wire(raw).replace(b"\r\n", b"\n") in got, f"message {number} differs"

    # getmail remembers UIDLs: nothing new the second time.
    assert getmail.run(delete=False, read_all=False) == 0, getmail.log
    assert len(getmail.files()) == len(mailbox)
    assert "0 messages" in getmail.log or "retrieved" not in getmail.log

    assert getmail.run(delete=True, read_all=True) == 0, getmail.log
    assert len(getmail.files()) == 2 * len(mailbox)
    assert account.inbox_uids() == []
