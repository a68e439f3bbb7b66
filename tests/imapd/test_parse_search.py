"""Every SEARCH key, groups, charsets and the depth bound."""

from __future__ import annotations

from datetime import date

import pytest

from relate.imapd import searchkeys as sk
from relate.imapd.commands import Search
from relate.imapd.parse import ParseError
from relate.imapd.seqset import SequenceSet
from tests.imapd import run_parser

S = SequenceSet.parse
FEB_1 = date(1994, 2, 1)


def search(wire: bytes) -> Search:
    parsed, _, _ = run_parser(b"A1 SEARCH " + wire + b"\r\n")
    assert isinstance(parsed.command, Search)
    return parsed.command


KEYS = [
    ("ALL", sk.AllKey()),
    ("ANSWERED", sk.FlagKey("\\Answered")),
    ("BCC bob", sk.TextKey("BCC", "bob")),
    ("BEFORE 1-Feb-1994", sk.DateKey("internal", "before", FEB_1)),
    ('BODY "two words"', sk.TextKey("BODY", "two words")),
    ("CC {3}\r\nbob", sk.TextKey("CC", "bob")),
    ("DELETED", sk.FlagKey("\\Deleted")),
    ("DRAFT", sk.FlagKey("\\Draft")),
    ("FLAGGED", sk.FlagKey("\\Flagged")),
    ("FROM Smith", sk.TextKey("FROM", "Smith")),
    ('HEADER List-Id ""', sk.HeaderKey("List-Id", "")),
    ("HEADER X-Spam yes", sk.HeaderKey("X-Spam", "yes")),
    ("KEYWORD $Forwarded", sk.FlagKey("$Forwarded")),
    ("LARGER 1024", sk.SizeKey(True, 1024)),
    ("NEW", sk.And((sk.FlagKey("\\Recent"), sk.FlagKey("\\Seen", False)))),
    ("NOT SEEN", sk.Not(sk.FlagKey("\\Seen"))),
    ("OLD", sk.FlagKey("\\Recent", False)),
    ('ON "1-Feb-1994"', sk.DateKey("internal", "on", FEB_1)),
    ("OR SEEN DRAFT", sk.Or(sk.FlagKey("\\Seen"), sk.FlagKey("\\Draft"))),
    ("RECENT", sk.FlagKey("\\Recent")),
    ("SEEN", sk.FlagKey("\\Seen")),
    ("SENTBEFORE 1-Feb-1994", sk.DateKey("sent", "before", FEB_1)),
    ("SENTON 1-Feb-1994", sk.DateKey("sent", "on", FEB_1)),
    ("SENTSINCE 1-Feb-1994", sk.DateKey("sent", "since", FEB_1)),
    ("SINCE 1-Feb-1994", sk.DateKey("internal", "since", FEB_1)),
    ("SMALLER 10000", sk.SizeKey(False, 10000)),
    ("SUBJECT hello", sk.TextKey("SUBJECT", "hello")),
    ("TEXT needle", sk.TextKey("TEXT", "needle")),
    ("TO alice", sk.TextKey("TO", "alice")),
    ("UID 1:*", sk.UidKey(S("1:*"))),
    ("UID $", sk.UidKey(S("$"))),
    ("UNANSWERED", sk.FlagKey("\\Answered", False)),
    ("UNDELETED", sk.FlagKey("\\Deleted", False)),
    ("UNDRAFT", sk.FlagKey("\\Draft", False)),
    ("UNFLAGGED", sk.FlagKey("\\Flagged", False)),
    ("UNKEYWORD Work", sk.FlagKey("Work", False)),
    ("UNSEEN", sk.FlagKey("\\Seen", False)),
    ("2:4,7", sk.SeqKey(S("2:4,7"))),
    ("*", sk.SeqKey(S("*"))),
    ("$", sk.SeqKey(S("$"))),
    ("MODSEQ 720162338", sk.ModSeqKey(720162338)),
    ("MODSEQ 0", sk.ModSeqKey(0)),
    ('MODSEQ "/flags/\\\\draft" all 620162338', sk.ModSeqKey(620162338, "\\Draft", "all")),
    ('MODSEQ "/flags/$Label1" PRIV 5', sk.ModSeqKey(5, "$Label1", "priv")),
    ("(SEEN)", sk.FlagKey("\\Seen")),
    ("(SEEN FLAGGED)", sk.And((sk.FlagKey("\\Seen"), sk.FlagKey("\\Flagged")))),
    (
        "OR (FROM a TO b) NOT (LARGER 5 SMALLER 9)",
        sk.Or(
            sk.And((sk.TextKey("FROM", "a"), sk.TextKey("TO", "b"))),
            sk.Not(sk.And((sk.SizeKey(True, 5), sk.SizeKey(False, 9)))),
        ),
    ),
    ("seen unseen", sk.And((sk.FlagKey("\\Seen"), sk.FlagKey("\\Seen", False)))),
]


@pytest.mark.parametrize(("wire", "key"), [pytest.param(w, k, id=w.split()[0]) for w, k in KEYS])
def test_search_key(wire: str, key: sk.SearchKey) -> None:
    assert search(wire.encode()).key == key


def test_all_keys_in_one_command_and_together() -> None:
    wire = " ".join(f"({w})" for w, _ in KEYS if "{" not in w).encode()
    assert search(wire).key == sk.And(tuple(k for w, k in KEYS if "{" not in w))


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        pytest.param(b"CHARSET ISO-8859-1 SUBJECT {4}\r\ncaf\xe9", "café", id="latin1-literal"),
        pytest.param(b"CHARSET UTF-8 BODY {5}\r\ncaf\xc3\xa9", "café", id="utf8-literal"),
        pytest.param(b"CHARSET windows-1252 TEXT {1}\r\n\x80", "€", id="windows-1252"),
        pytest.param(b"BODY {5}\r\ncaf\xc3\xa9", "café", id="no-charset-is-utf8"),
    ],
)
def test_charset_decodes_strings(wire: bytes, value: str) -> None:
    key = search(wire).key
    assert isinstance(key, sk.TextKey) and key.value == value


def test_invalid_bytes_for_the_charset_are_bad() -> None:
    with pytest.raises(ParseError, match="utf-8"):
        search(b"CHARSET UTF-8 BODY {2}\r\n\xff\xfe")


def test_unknown_charset_still_parses_for_badcharset() -> None:
    command = search(b"CHARSET X-UNKNOWN BODY {2}\r\n\xff\xfe")
    assert not command.charset_supported
    assert command.charset == "X-UNKNOWN"


def test_not_chain_depth_is_bounded() -> None:
    deepest = b"NOT " * (sk.MAX_SEARCH_DEPTH - 1) + b"ALL"
    assert isinstance(search(deepest).key, sk.Not)
    with pytest.raises(ParseError, match="deeply"):
        search(b"NOT " * sk.MAX_SEARCH_DEPTH + b"ALL")


def test_or_chain_depth_is_bounded() -> None:
    with pytest.raises(ParseError, match="deeply"):
        search(b"OR SEEN " * 10_000 + b"ALL")


@pytest.mark.parametrize(
    "wire",
    [
        "HEADER Subject: x",
        "HEADER Subject",
        "LARGER -1",
        "LARGER x",
        "SMALLER 99999999999999999999999",
        "BEFORE 31-Feb-2024",
        "SINCE yesterday",
        'MODSEQ "/foo" all 5',
        'MODSEQ "/flags/\\\\Seen" bogus 5',
        'MODSEQ "/flags/\\\\Seen" 5',
        'MODSEQ "/flags/a b" all 5',
        "MODSEQ",
        "OR SEEN",
        "NOT",
        "(SEEN",
        "SEEN)",
        "()",
        "KEYWORD \\Seen",
        "UID",
        "UID 1:$",
        "1:2:3",
        "FROM",
        "BOGUS",
        "SEEN  FLAGGED",
    ],
)
def test_invalid_search_is_bad(wire: str) -> None:
    with pytest.raises(ParseError):
        search(wire.encode())
