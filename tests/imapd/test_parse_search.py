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


# 8-bit quoted strings under a CHARSET (RFC 9051 §6.4.4), by id: wire after "A1 ", key.
QUOTED_8BIT: dict[str, tuple[str | bytes, sk.SearchKey]] = {
    "utf8": ('SEARCH CHARSET UTF-8 SUBJECT "grüße"', sk.TextKey("SUBJECT", "grüße")),
    "uid-search": ('UID SEARCH CHARSET utf-8 BODY "naïve"', sk.TextKey("BODY", "naïve")),
    "header": ('SEARCH CHARSET UTF-8 HEADER X-Note "grüße"', sk.HeaderKey("X-Note", "grüße")),
    "latin1": (b'SEARCH CHARSET ISO-8859-1 SUBJECT "caf\xe9"', sk.TextKey("SUBJECT", "café")),
    "return-or-escapes": (
        'SEARCH RETURN (COUNT) CHARSET UTF-8 OR FROM "Jörg" TO "\\\\ö\\""',
        sk.Or(sk.TextKey("FROM", "Jörg"), sk.TextKey("TO", '\\ö"')),
    ),
    "quoted-and-literal": (
        'SEARCH CHARSET UTF-8 SUBJECT "café" BODY {3}\r\nü!',
        sk.And((sk.TextKey("SUBJECT", "café"), sk.TextKey("BODY", "ü!"))),
    ),
}

# 8-bit octets a command may not hold without UTF8=ACCEPT, by id: wire after "A1 ", message.
REFUSED_8BIT: dict[str, tuple[str | bytes, str]] = {
    "no-charset": ('SEARCH SUBJECT "grüße"', "need UTF8=ACCEPT"),
    "us-ascii": ('SEARCH CHARSET US-ASCII SUBJECT "grüße"', "not valid US-ASCII"),
    "invalid-utf8": (b'SEARCH CHARSET UTF-8 SUBJECT "\xff\xfe"', "not valid UTF-8"),
    "truncated-utf8": (b'SEARCH CHARSET UTF-8 SUBJECT "gr\xc3"', "not valid UTF-8"),
    "invalid-utf8-literal": (b"SEARCH CHARSET UTF-8 BODY {2}\r\n\xff\xfe", "not valid UTF-8"),
    "header-name": ('SEARCH CHARSET UTF-8 HEADER "X-ü" x', "invalid header field name"),
    "modseq-entry": ('SEARCH CHARSET UTF-8 MODSEQ "/flags/ü" all 5', "need UTF8=ACCEPT"),
    "charset-name": ('SEARCH CHARSET "ü" ALL', "need UTF8=ACCEPT"),
    "atom": ("SEARCH CHARSET UTF-8 SUBJECT grüße", "unexpected characters"),
    "login": ('LOGIN "grüße" secret', "need UTF8=ACCEPT"),
    "select": ('SELECT "grüße"', "need UTF8=ACCEPT"),
}


def wire_line(wire: str | bytes) -> bytes:
    return b"A1 " + (wire.encode() if isinstance(wire, str) else wire) + b"\r\n"


@pytest.mark.parametrize(("wire", "key"), QUOTED_8BIT.values(), ids=QUOTED_8BIT.keys())
def test_8bit_quoted_search_strings(wire: str | bytes, key: sk.SearchKey) -> None:
    parsed, _, _ = run_parser(wire_line(wire))
    assert isinstance(parsed.command, Search) and parsed.command.key == key


@pytest.mark.parametrize(("wire", "message"), REFUSED_8BIT.values(), ids=REFUSED_8BIT.keys())
def test_8bit_quoted_strings_refused_elsewhere(wire: str | bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        run_parser(wire_line(wire))


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"CHARSET X-UNKNOWN BODY {2}\r\n\xff\xfe", id="literal"),
        pytest.param(b'CHARSET X-UNKNOWN BODY "\xff\xfe"', id="quoted"),
    ],
)
def test_unknown_charset_still_parses_for_badcharset(wire: bytes) -> None:
    command = search(wire)
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
