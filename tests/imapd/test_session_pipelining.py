"""Replies to pipelined commands: written together, in order, and always before the session
waits for the client (a partial line, a continuation request, a literal, IDLE, LOGOUT)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relate.protocol.connection import Connection
from tests.imapd.conftest import Account, ImapServer, RawClient


def lines(client: RawClient, tag: bytes) -> list[str]:
    return [line.decode().rstrip("\r\n") for line in client.until(tag)]


@pytest.fixture
def session(server: ImapServer, account: Account) -> RawClient:
    client = server.raw(tls=True)
    client.login(account)
    assert client.command("s SELECT INBOX")[-1].startswith(b"s OK")
    return client


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Everything the server writes from now on, one element per write."""
    written: list[bytes] = []
    write = Connection.write

    def counting(self: Connection, data: bytes, timeout: float = 120.0) -> None:
        written.append(bytes(data))
        write(self, data, timeout)

    monkeypatch.setattr(Connection, "write", counting)
    yield written


def test_a_pipelined_batch_is_answered_in_one_write(session: RawClient, writes: list[bytes]) -> None:
    session.send(b"a NOOP\r\nb CAPABILITY\r\nc NOOP\r\nd CHECK\r\n")
    got = lines(session, b"d")
    assert [line.split(" ", 1)[0] for line in got] == ["a", "*", "b", "c", "d"]
    assert got[0] == "a OK NOOP completed" and got[-1] == "d OK CHECK completed"
    assert len(writes) == 1


def test_replies_go_out_before_waiting_for_the_rest_of_a_line(session: RawClient, writes: list[bytes]) -> None:
    session.send(b"a NOOP\r\nb NO")
    assert lines(session, b"a") == ["a OK NOOP completed"]  # times out if it were held back
    session.send(b"OP\r\n")
    assert lines(session, b"b") == ["b OK NOOP completed"]
    assert len(writes) == 2


def test_replies_go_out_before_a_continuation_request(session: RawClient) -> None:
    session.send(b"a NOOP\r\nb APPEND INBOX {5}\r\n")
    assert lines(session, b"a") == ["a OK NOOP completed"]
    assert session.line().startswith(b"+ ")
    session.send(b"hello\r\n")
    assert lines(session, b"b")[-1].startswith("b OK [APPENDUID ")


def test_replies_go_out_before_a_non_synchronizing_literal_is_read(session: RawClient) -> None:
    session.send(b"a NOOP\r\nb APPEND INBOX {5+}\r\n")
    assert lines(session, b"a") == ["a OK NOOP completed"]  # before the literal has arrived
    session.send(b"hello\r\n")
    assert lines(session, b"b")[-1].startswith("b OK [APPENDUID ")


def test_replies_go_out_before_idling(session: RawClient) -> None:
    session.send(b"a NOOP\r\nb IDLE\r\n")
    assert lines(session, b"a") == ["a OK NOOP completed"]
    assert session.line() == b"+ idling\r\n"
    session.send(b"DONE\r\n")
    assert lines(session, b"b") == ["b OK IDLE terminated"]


def test_a_pipelined_logout_gets_every_reply_then_the_connection_closes(session: RawClient) -> None:
    session.send(b"a NOOP\r\nb LOGOUT\r\n")
    assert lines(session, b"b") == ["a OK NOOP completed", "* BYE logging out", "b OK LOGOUT completed"]
    assert session.at_eof()
