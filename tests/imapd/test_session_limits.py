"""Bounded input: long lines, deep nesting, huge sequence sets, literals after BAD, timeouts."""

from __future__ import annotations

import time

import pytest

from relate.imapd import session as session_module
from tests.imapd.conftest import Account, ImapServer, RawClient


@pytest.fixture
def client(server: ImapServer, account: Account) -> RawClient:
    client = server.raw(tls=True)
    client.login(account)
    client.command("s SELECT INBOX")
    return client


def test_overlong_line_closes(client: RawClient) -> None:
    client.send(b"a NOOP " + b"x" * (session_module.MAX_LINE + 10) + b"\r\n")
    assert client.line() == b"* BYE line too long\r\n"
    assert client.at_eof()


def test_deep_nesting_is_bad_and_cheap(client: RawClient, account: Account) -> None:
    account.append()
    started = time.monotonic()
    reply = client.command(b"a SEARCH " + b"(" * 5000 + b"ALL" + b")" * 5000)
    assert reply[-1].startswith(b"a BAD")
    reply = client.command(b"b SEARCH " + b"NOT " * 5000 + b"ALL")
    assert reply[-1].startswith(b"b BAD")
    assert time.monotonic() - started < 2
    assert client.command("c NOOP")[-1].startswith(b"c OK")


def test_huge_sequence_sets_are_cheap(client: RawClient, account: Account) -> None:
    account.append()
    client.command("n NOOP")
    started = time.monotonic()
    reply = client.command("a UID FETCH 1:4294967295,1:4294967295 (UID)")
    assert reply == [b"* 1 FETCH (UID 1)\r\n", b"a OK UID FETCH completed\r\n"]
    many = ",".join(str(n) for n in range(1, 20005, 2))  # 10002 ranges
    assert client.command(f"b UID FETCH {many} (UID)")[-1].startswith(b"b BAD")  # over the range cap
    assert client.command("c UID SEARCH UID 1:4294967295")[0] == b"* SEARCH 1\r\n"
    assert time.monotonic() - started < 2


def test_nonsynchronising_literal_after_bad_is_skipped(client: RawClient) -> None:
    # The command is wrong before its literal, which is already on its way (LITERAL+).
    client.send(b"a BOGUS-VERB {5+}\r\nhello\r\nb NOOP\r\n")
    assert client.line().startswith(b"a BAD")
    assert client.line() == b"b OK NOOP completed\r\n"


def test_synchronising_literal_after_bad_gets_no_continuation(client: RawClient) -> None:
    client.send(b"a FETCH x {5}\r\n")
    assert client.line().startswith(b"a BAD")
    assert client.command("b NOOP")[-1] == b"b OK NOOP completed\r\n"


def test_argument_literals_are_bounded(client: RawClient) -> None:
    client.send(b"a LOGIN {100000}\r\n")
    assert client.line().startswith(b"a NO [TOOBIG]")


def test_login_deadline_is_short(monkeypatch: pytest.MonkeyPatch, server: ImapServer) -> None:
    monkeypatch.setattr(session_module, "PREAUTH_TIMEOUT", 0.3)
    client = server.raw()
    assert client.line().startswith(b"* BYE autologout")
    assert client.at_eof()


def test_authenticated_deadline_is_at_least_thirty_minutes() -> None:
    assert session_module.AUTH_TIMEOUT >= 30 * 60  # RFC 9051 §5.4


def test_pipelined_commands_are_answered_in_order(client: RawClient, account: Account) -> None:
    account.append()
    client.command("n NOOP")
    client.send(b"a NOOP\r\nb FETCH 1 (UID)\r\nc CAPABILITY\r\nd STATUS INBOX (MESSAGES)\r\n")
    tags = []
    while len(tags) < 4:
        line = client.line()
        if not line.startswith(b"* "):
            tags.append(line.split(b" ", 1)[0])
    assert tags == [b"a", b"b", b"c", b"d"]
