"""Hostile input: whatever the bytes, parse_command returns or raises ParseError, quickly."""

from __future__ import annotations

import random
import time

import pytest

from relate.imapd.parse import INTERNAL_ERROR, NeedLiteral, Parsed, ParseError, parse_command

CORPUS = [
    b"A1 CAPABILITY\r\n",
    b"A2 LOGIN {3}\r\nbob {6+}\r\nsecret\r\n",
    b"A3 AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n",
    b"A4 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541 (1:5 10:15)))\r\n",
    b"A5 UID FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100> BINARY[1]) "
    b"(CHANGEDSINCE 12345 VANISHED)\r\n",
    b"A6 SEARCH RETURN (MIN COUNT SAVE) CHARSET UTF-8 OR FROM {3}\r\nbob (SUBJECT hi NOT SEEN) "
    b'UID $ MODSEQ "/flags/\\\\draft" all 6\r\n',
    b"A7 STORE 1:3,5 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Seen $Label)\r\n",
    b'A8 LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX*" %/foo) RETURN (CHILDREN STATUS (MESSAGES))\r\n',
    b'A9 APPEND Sent (\\Seen) " 7-Jul-1996 02:44:25 -0700" {310}\r\n\r\n',
    b"A10 APPEND INBOX UTF8 (~{5+}\r\n)\r\n",
    b"A11 CREATE &U,BTFw- (USE (\\Sent))\r\n",
    b'A12 ID ("name" "x" "version" NIL)\r\n',
    b"A13 STATUS INBOX (MESSAGES UIDNEXT HIGHESTMODSEQ)\r\n",
    b"A14 UID EXPUNGE 3000:3002\r\n",
    b"A15 COPY $ Trash\r\n",
    b"A16 SEARCH SENTSINCE 1-Feb-1994 LARGER 100 HEADER X-A b 1:5,7\r\n",
]

INTERESTING = b'(){}[]<>"\\*$%:,.~+ -\r\n\x00\xff019AZaz'


def check(buf: bytes, utf8: bool = False) -> None:
    try:
        result = parse_command(buf, 4096, utf8)
    except ParseError as error:
        assert error.message != INTERNAL_ERROR, f"parser bug on {buf!r}"
        assert error.tag is None or isinstance(error.tag, str)
        return
    assert isinstance(result, Parsed | NeedLiteral)


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[pos:pos] = bytes([rng.choice(INTERESTING)])
        elif op == 2:
            del buf[pos : pos + rng.randint(1, 8)]
        elif op == 3:
            end = min(len(buf), pos + rng.randint(1, 16))
            buf[pos:pos] = buf[pos:end] * rng.randint(1, 20)
        elif op == 4:
            buf[pos:pos] = str(rng.choice([0, 1, 2**32, 2**63, 10**30])).encode()
        else:
            other = rng.choice(CORPUS)
            buf[pos:] = other[rng.randrange(len(other)) :]
    return bytes(buf)


def test_corpus_is_valid() -> None:
    for buf in CORPUS:
        assert isinstance(parse_command(buf, 4096, utf8=True), Parsed), buf


def test_random_bytes() -> None:
    rng = random.Random(20240601)
    for _ in range(10_000):
        buf = bytes(rng.randrange(256) for _ in range(rng.randint(0, 80)))
        if rng.random() < 0.5:
            buf = b"A1 " + buf + b"\r\n"
        check(buf, utf8=rng.random() < 0.5)


def test_mutated_commands() -> None:
    rng = random.Random(19960717)
    for _ in range(10_000):
        check(mutate(rng, rng.choice(CORPUS)), utf8=rng.random() < 0.5)


def test_every_prefix_of_every_command() -> None:
    for buf in CORPUS:
        for end in range(len(buf)):
            check(buf[:end])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"SEARCH " + b"(" * 100_000, id="open-parens"),
        pytest.param(b"SEARCH " + b"NOT " * 50_000 + b"ALL", id="not-chain"),
        pytest.param(b"SEARCH " + b"OR ALL " * 50_000 + b"ALL", id="or-chain"),
        pytest.param(b"SEARCH " + b"ALL " * 50_000 + b"ALL", id="many-keys"),
        pytest.param(b"FETCH " + b"1," * 100_000 + b"1 FLAGS", id="long-seqset"),
        pytest.param(b"FETCH 1 BODY[" + b"1." * 50_000 + b"1]", id="deep-section-part"),
        pytest.param(b'LOGIN "' + b"\\\\" * 100_000 + b'" x', id="long-escapes"),
        pytest.param(b'LOGIN "' + b"a" * 200_000, id="unterminated-quote"),
        pytest.param(b"STORE 1 FLAGS " + b"\\Seen " * 30_000 + b"x", id="many-flags"),
        pytest.param(b"LIST " + b"(" * 100_000, id="list-parens"),
        pytest.param(b"APPEND INBOX " + b"{" * 100_000, id="braces"),
        pytest.param(b"ID (" + b'"a" NIL ' * 20_000 + b")", id="many-id-pairs"),
        pytest.param(b"X" * 200_000, id="long-command-word"),
    ],
)
@pytest.mark.usefixtures("no_gc")
def test_pathological_input_is_fast(body: bytes) -> None:
    started = time.process_time()
    check(b"A1 " + body + b"\r\n")
    assert time.process_time() - started < 1.0


def test_a_parser_bug_becomes_bad_and_logs_no_command_data(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from relate.imapd import parse

    def broken(r: object) -> None:
        raise ValueError("invalid literal: 'hunter2'")

    monkeypatch.setitem(parse._COMMANDS, "LOGIN", broken)
    with pytest.raises(ParseError) as caught:
        parse_command(b"A1 LOGIN bob hunter2\r\n", 4096)
    assert caught.value.message == INTERNAL_ERROR and caught.value.tag == "A1"
    assert "ValueError" in caplog.text
    assert "hunter2" not in caplog.text
