"""relate.message.crlf (the wire form and its size) and relate.pop3d.wire (dot-stuffing, TOP and
UIDL). Pure, table-driven."""

from __future__ import annotations

import random

import pytest

from relate.message import crlf
from relate.pop3d import wire
from tests.pop3d.tricky import on_the_wire, tricky_messages

WIRE_CASES = [
    pytest.param(b"", b"", id="empty"),
    pytest.param(b"a\r\nb\r\n", b"a\r\nb\r\n", id="crlf-unchanged"),
    pytest.param(b"a\nb\n", b"a\r\nb\r\n", id="bare-lf"),
    pytest.param(b"a\r\nb\nc\r\n", b"a\r\nb\r\nc\r\n", id="mixed"),
    pytest.param(b"no newline", b"no newline\r\n", id="no-final-eol"),
    pytest.param(b"a\r\nlast", b"a\r\nlast\r\n", id="crlf-then-unterminated"),
    pytest.param(b"lone\rcr\r\n", b"lone\rcr\r\n", id="lone-cr-kept"),
    pytest.param(b"ends in cr\r", b"ends in cr\r\r\n", id="trailing-lone-cr"),
    pytest.param(b"cr cr lf\r\r\n", b"cr cr lf\r\r\n", id="cr-crlf"),
    pytest.param(b"\n\n", b"\r\n\r\n", id="only-lfs"),
    pytest.param(b"\x00\xff\n\x80", b"\x00\xff\r\n\x80\r\n", id="binary"),
]


@pytest.mark.parametrize(("raw", "expected"), WIRE_CASES)
def test_wire_form(raw: bytes, expected: bytes) -> None:
    assert crlf.wire_form(raw) == expected
    assert crlf.wire_size(raw) == len(expected)
    assert on_the_wire(raw) == expected


def test_wire_form_of_crlf_message_is_the_same_object() -> None:
    raw = b"Subject: x\r\n\r\nbody\r\n"
    assert crlf.wire_form(raw) is raw


def test_wire_form_matches_reference_on_random_bytes() -> None:
    rng = random.Random(2449)
    alphabet = b"ab.\r\n\x00\xff"
    for _ in range(2000):
        raw = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        assert crlf.wire_form(raw) == on_the_wire(raw), raw
        assert crlf.wire_size(raw) == len(on_the_wire(raw)), raw


STUFF_CASES = [
    pytest.param(b"a\r\nb\r\n", b"a\r\nb\r\n", id="nothing"),
    pytest.param(b".a\r\n", b"..a\r\n", id="first-line"),
    pytest.param(b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n", id="lone-dot-line"),
    pytest.param(b"a\r\n..b\r\n", b"a\r\n...b\r\n", id="two-dots"),
    pytest.param(b"a.b\r\n a\r\n", b"a.b\r\n a\r\n", id="dot-inside"),
    pytest.param(b"a\r.b\r\n", b"a\r.b\r\n", id="after-lone-cr"),
    pytest.param(b".\r\n.\r\n", b"..\r\n..\r\n", id="all-dots"),
]


@pytest.mark.parametrize(("wire_bytes", "expected"), STUFF_CASES)
def test_dot_stuff(wire_bytes: bytes, expected: bytes) -> None:
    assert wire.dot_stuff(wire_bytes) == expected


def unstuff(stuffed: bytes) -> bytes:
    """What a client does (RFC 1939 §3): drop the first "." of a line that starts with one."""
    lines = stuffed.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


@pytest.mark.parametrize(("name", "raw"), tricky_messages(big=False))
def test_stuffed_message_never_ends_early_and_round_trips(name: str, raw: bytes) -> None:
    stuffed = wire.dot_stuff(crlf.wire_form(raw))
    sent = stuffed + wire.TERMINATOR
    assert sent.find(b"\r\n.\r\n") == len(stuffed) - 2 or stuffed == b""
    assert unstuff(stuffed) == on_the_wire(raw)


MESSAGE = b"A: 1\r\nB: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n"

TOP_CASES = [
    pytest.param(MESSAGE, 0, b"A: 1\r\nB: 2\r\n\r\n", id="header-only"),
    pytest.param(MESSAGE, 1, b"A: 1\r\nB: 2\r\n\r\nl1\r\n", id="one-line"),
    pytest.param(MESSAGE, 2, b"A: 1\r\nB: 2\r\n\r\nl1\r\n.l2\r\n", id="two-lines"),
    pytest.param(MESSAGE, 3, MESSAGE, id="all-lines"),
    pytest.param(MESSAGE, 99, MESSAGE, id="more-than-there-are"),
    pytest.param(b"A: 1\r\nB: 2\r\n", 5, b"A: 1\r\nB: 2\r\n", id="no-body"),
    pytest.param(b"\r\nbody\r\nmore\r\n", 1, b"\r\nbody\r\n", id="no-header"),
    pytest.param(b"A: 1\r\n\r\n\r\n\r\nx\r\n", 2, b"A: 1\r\n\r\n\r\n\r\n", id="empty-body-lines"),
    pytest.param(b"", 3, b"", id="empty-message"),
]


@pytest.mark.parametrize(("message", "lines", "expected"), TOP_CASES)
def test_top(message: bytes, lines: int, expected: bytes) -> None:
    assert wire.top(message, lines) == expected


def test_unique_id_is_printable_short_and_distinct() -> None:
    ids = {wire.unique_id(v, u) for v in (1, 2**32 - 1) for u in (1, 2, 2**32 - 1)}
    assert len(ids) == 6
    for uid in ids:
        assert 1 <= len(uid) <= 70
        assert all(0x21 <= ord(c) <= 0x7E for c in uid)


def test_reply_builders() -> None:
    assert wire.ok() == b"+OK\r\n"
    assert wire.ok("fine") == b"+OK fine\r\n"
    assert wire.err("nope") == b"-ERR nope\r\n"
    assert wire.err("locked", "IN-USE") == b"-ERR [IN-USE] locked\r\n"
    assert wire.multiline("2 items", ["1 10", "2 20"]) == b"+OK 2 items\r\n1 10\r\n2 20\r\n.\r\n"
