"""Literals: NeedLiteral, resuming, LITERAL+, literal8, APPEND streaming, limits, framing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from relate.imapd import commands as c
from relate.imapd.grammar import MAX_LITERALS
from relate.imapd.parse import (
    LiteralRef,
    NeedLiteral,
    Parsed,
    ParseError,
    is_idle_done,
    parse_command,
    trailing_literal,
)
from tests.imapd import run_parser

MESSAGE = b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
N = len(MESSAGE)


@pytest.mark.parametrize(
    ("line", "need"),
    [
        pytest.param(b"A1 LOGIN {3}\r\n", NeedLiteral(3, True, False, False, False, "A1", "LOGIN"), id="sync"),
        pytest.param(
            b"A1 LOGIN {3+}\r\n", NeedLiteral(3, False, False, False, False, "A1", "LOGIN"), id="literal-plus"
        ),
        pytest.param(b"A1 LOGIN bob {6}\n", NeedLiteral(6, True, False, False, False, "A1", "LOGIN"), id="bare-lf"),
        pytest.param(
            b"A1 APPEND INBOX {%d}\r\n" % N, NeedLiteral(N, True, False, True, False, "A1", "APPEND"), id="append"
        ),
        pytest.param(
            b"A1 APPEND INBOX {%d+}\r\n" % N,
            NeedLiteral(N, False, False, True, False, "A1", "APPEND"),
            id="append-plus",
        ),
        pytest.param(
            b"A1 APPEND INBOX ~{%d}\r\n" % N,
            NeedLiteral(N, True, True, True, False, "A1", "APPEND"),
            id="append-literal8",
        ),
        pytest.param(
            b"A1 APPEND INBOX ~{%d+}\r\n" % N,
            NeedLiteral(N, False, True, True, False, "A1", "APPEND"),
            id="append-literal8-plus",
        ),
        pytest.param(
            b"A1 APPEND INBOX {2000}\r\n",
            NeedLiteral(2000, True, False, True, True, "A1", "APPEND"),
            id="append-too-big",
        ),
        pytest.param(
            b"A1 LOGIN {2000+}\r\n", NeedLiteral(2000, False, False, False, True, "A1", "LOGIN"), id="inline-too-big"
        ),
        pytest.param(
            b"A1 UID SEARCH SUBJECT {3}\r\n",
            NeedLiteral(3, True, False, False, False, "A1", "UID SEARCH"),
            id="uid-command",
        ),
    ],
)
def test_need_literal(line: bytes, need: NeedLiteral) -> None:
    assert parse_command(line, max_literal=1000) == need


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"A1 LOGIN {3}\r\nbob {6}\r\nsecret\r\n", id="two-sync"),
        pytest.param(b"A1 LOGIN {3+}\r\nbob {6+}\r\nsecret\r\n", id="two-literal-plus"),
        pytest.param(b"A1 LOGIN {3}\r\nbob secret\r\n", id="then-atom"),
        pytest.param(b'A1 LOGIN bob "secret"\r\n', id="no-literal"),
    ],
)
def test_literal_round_trip(wire: bytes) -> None:
    parsed, sinks, _ = run_parser(wire)
    assert parsed == Parsed("A1", c.Login("bob", "secret"))
    assert sinks == []


def test_literal_data_is_taken_verbatim() -> None:
    password = b'p a"s\\s\r\n(x)'
    parsed, _, needs = run_parser(b"A1 LOGIN bob {%d}\r\n%s\r\n" % (len(password), password))
    assert parsed.command == c.Login("bob", password.decode())
    assert [n.size for n in needs] == [len(password)]


def test_append_streams_the_message_out_of_the_buffer() -> None:
    line = b'A1 APPEND Sent (\\Seen $Sent) "17-Jul-1996 02:44:25 -0700" {%d}\r\n' % N
    need = parse_command(line, 1_000_000)
    assert isinstance(need, NeedLiteral) and need.is_append_message
    # The session wrote the message to a sink; only the rest of the line joins the buffer.
    result = parse_command(line + b"\r\n", 1_000_000)
    assert result == Parsed(
        "A1",
        c.Append(
            "Sent",
            LiteralRef(0, N, False),
            ("\\Seen", "$Sent"),
            datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(-timedelta(hours=7))),
        ),
    )


@pytest.mark.parametrize(
    ("wire", "utf8", "expected"),
    [
        pytest.param(b"A1 APPEND INBOX {%d}\r\n" % N + MESSAGE + b"\r\n", False,
                     c.Append("INBOX", LiteralRef(0, N)), id="plain"),
        pytest.param(b"A1 APPEND INBOX {%d+}\r\n" % N + MESSAGE + b"\r\n", False,
                     c.Append("INBOX", LiteralRef(0, N)), id="literal-plus"),
        pytest.param(b"A1 APPEND INBOX (\\Draft) ~{%d}\r\n" % N + MESSAGE + b"\r\n", False,
                     c.Append("INBOX", LiteralRef(0, N, True), ("\\Draft",)), id="literal8"),
        pytest.param(b"A1 APPEND INBOX UTF8 (~{%d}\r\n" % N + MESSAGE + b")\r\n", True,
                     c.Append("INBOX", LiteralRef(0, N, True), utf8=True), id="utf8-form"),
        pytest.param(b"A1 APPEND {5}\r\nDraft {%d}\r\n" % N + MESSAGE + b"\r\n", False,
                     c.Append("Draft", LiteralRef(0, N)), id="mailbox-literal-then-message"),
    ],
)  # fmt: skip
def test_append_forms(wire: bytes, utf8: bool, expected: c.Append) -> None:
    parsed, sinks, needs = run_parser(wire, utf8=utf8)
    assert parsed.command == expected
    assert sinks == [MESSAGE]
    assert needs[-1].is_append_message and not any(n.is_append_message for n in needs[:-1])


def test_second_append_message_is_bad() -> None:
    buf = b"A1 APPEND INBOX {3}\r\n {3}\r\n"
    with pytest.raises(ParseError):
        parse_command(buf, 1000)


def test_utf8_append_needs_its_closing_paren() -> None:
    with pytest.raises(ParseError):
        parse_command(b"A1 APPEND INBOX UTF8 (~{3}\r\n\r\n", 1000, utf8=True)


def test_too_big_literal_present_in_buffer_is_bad() -> None:
    """A session that ignored too_big still cannot make the parser accept the literal."""
    with pytest.raises(ParseError, match="too big"):
        parse_command(b"A1 LOGIN {2000}\r\n" + b"x" * 2000 + b" y\r\n", 1000)
    with pytest.raises(ParseError, match="too big"):
        parse_command(b"A1 APPEND INBOX {2000}\r\n\r\n", 1000)


def test_inline_literals_share_one_budget() -> None:
    first = b"A1 LOGIN {600}\r\n" + b"u" * 600 + b" {600}\r\n"
    need = parse_command(first, max_literal=10_000, max_inline_literal=1000)
    assert isinstance(need, NeedLiteral) and need.too_big
    # The APPEND message is not held to the in-buffer budget, only to max_literal.
    need = parse_command(b"A1 APPEND INBOX {5000}\r\n", max_literal=10_000, max_inline_literal=1000)
    assert isinstance(need, NeedLiteral) and not need.too_big


def test_too_many_literals_is_bad() -> None:
    buf = b"A1 SEARCH" + b" TEXT {1}\r\nx" * (MAX_LITERALS + 1) + b"\r\n"
    with pytest.raises(ParseError, match="too many literals"):
        parse_command(buf, 1000)


@pytest.mark.parametrize(
    "buf",
    [
        pytest.param(b"A1 LOGIN {3}\r\nbo", id="literal-data-short"),
        pytest.param(b"A1 LOGIN {3}\r\nbob", id="no-rest-of-line"),
        pytest.param(b"A1 NOOP", id="no-line-end"),
        pytest.param(b"A1 NOOP\r\nA2 NOOP\r\n", id="two-commands"),
        pytest.param(b"A1 LOGIN {3}x\r\n", id="junk-after-header"),
        pytest.param(b"A1 LOGIN {3}\r\nb\x00b x\r\n", id="nul-in-literal"),
        pytest.param(b"A1 FETCH {1}\r\n", id="literal-where-no-string"),
        pytest.param(b"A1 LOGIN ~{3}\r\n", id="literal8-outside-append"),
        pytest.param(b"A1 LOGIN {-1}\r\n", id="negative-size"),
        pytest.param(b"A1 LOGIN {4294967296}\r\n", id="size-over-32-bit"),
    ],
)
def test_malformed_buffers_are_bad(buf: bytes) -> None:
    with pytest.raises(ParseError):
        parse_command(buf, 1_000_000)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(b"A1 LOGIN bob {5+}\r\n", NeedLiteral(5, False, False, False, False, None), id="plus"),
        pytest.param(b"A1 X {5}\r\n", NeedLiteral(5, True, False, False, False, None), id="sync"),
        pytest.param(b"A1 X ~{5}\n", NeedLiteral(5, True, True, False, False, None), id="literal8-lf"),
        pytest.param(b"A1 X {5000+}\r\n", NeedLiteral(5000, False, False, False, True, None), id="too-big"),
        pytest.param(b"A1 NOOP\r\n", None, id="none"),
        pytest.param(b"A1 X {5} \r\n", None, id="not-at-end"),
    ],
)
def test_trailing_literal(line: bytes, expected: NeedLiteral | None) -> None:
    assert trailing_literal(line, max_literal=1000) == expected


@pytest.mark.parametrize(
    ("line", "done"),
    [(b"DONE\r\n", True), (b"done\n", True), (b"DONE \r\n", False), (b"A1 NOOP\r\n", False)],
    ids=["done", "lowercase-lf", "trailing-space", "command"],
)
def test_is_idle_done(line: bytes, done: bool) -> None:
    assert is_idle_done(line) is done
