"""Tokens (strings, numbers, lists, dates, flags, mailbox names) and the reply-side helpers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from relate.imapd.grammar import (
    MAX_NESTING,
    MAX_NUMBER,
    MAX_NUMBER64,
    ParseError,
    Reader,
    UndecodableName,
    format_astring,
    format_flags,
    format_mailbox,
    imap_datetime,
    mutf7_decode,
    mutf7_encode,
    quote_string,
)
from relate.imapd.parse import Parsed, parse_command


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        pytest.param(b'"abc"', b"abc", id="plain"),
        pytest.param(b'""', b"", id="empty"),
        pytest.param(b'"a\\"b"', b'a"b', id="escaped-quote"),
        pytest.param(b'"a\\\\b"', b"a\\b", id="escaped-backslash"),
        pytest.param(b'"(){}%*]"', b"(){}%*]", id="specials-inside"),
        pytest.param(b'"NIL"', b"NIL", id="quoted-nil-is-a-string"),
    ],
)
def test_quoted(wire: bytes, value: bytes) -> None:
    r = Reader(wire)
    assert r.quoted() == value
    assert r.pos == len(wire)


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b'"a\\nb"', id="escape-n"),
        pytest.param(b'"a\\x"', id="escape-x"),
        pytest.param(b'"abc\\"', id="escape-at-end"),
        pytest.param(b'"abc', id="unterminated"),
        pytest.param(b'"a\rb"', id="cr"),
        pytest.param(b'"a\nb"', id="lf"),
        pytest.param(b'"a\x00b"', id="nul"),
    ],
)
def test_quoted_rejects(wire: bytes) -> None:
    with pytest.raises(ParseError):
        Reader(wire).quoted()


def test_quoted_8bit_needs_utf8_and_must_be_utf8() -> None:
    wire = '"Grüße"'.encode()
    with pytest.raises(ParseError, match="UTF8=ACCEPT"):
        Reader(wire).quoted()
    assert Reader(wire, utf8=True).quoted() == "Grüße".encode()
    with pytest.raises(ParseError, match="UTF-8"):
        Reader(b'"Gr\xfc\xdfe"', utf8=True).quoted()
    # A caller that decodes in a charset the client named takes the octets as they are.
    assert Reader(b'"Gr\xfc\xdfe"').quoted(eight_bit=True) == b"Gr\xfc\xdfe"
    assert Reader(b'"Gr\xfc\xdfe"').astring(eight_bit=True) == b"Gr\xfc\xdfe"


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        pytest.param(b"atom", b"atom", id="atom"),
        pytest.param(b"a]b", b"a]b", id="astring-char-bracket"),
        pytest.param(b'"q s"', b"q s", id="quoted"),
        pytest.param(b"{3}\r\nabc", b"abc", id="literal"),
        pytest.param(b"{3+}\r\na\r\n", b"a\r\n", id="literal-plus-with-crlf-inside"),
        pytest.param(b"{0}\r\n ", b"", id="empty-literal"),
        pytest.param(b"~peter", b"~peter", id="tilde-atom-is-not-literal8"),
    ],
)
def test_astring(wire: bytes, value: bytes) -> None:
    assert Reader(wire).astring() == value


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"{3}\r\na\x00c ", id="nul-in-literal"),
        pytest.param(b"{3}abc", id="header-without-crlf"),
        pytest.param(b"{3}\r\nab", id="data-incomplete"),
        pytest.param(b"{x}\r\n", id="size-not-number"),
        pytest.param(b"{99999999999}\r\nx", id="size-over-32-bit"),
        pytest.param(b"~{3}\r\nabc", id="literal8-outside-append"),
        pytest.param(b"(a", id="not-astring"),
        pytest.param(b"", id="end-of-buffer"),
    ],
)
def test_astring_rejects(wire: bytes) -> None:
    with pytest.raises(ParseError):
        Reader(wire).astring()


def test_nstring() -> None:
    assert Reader(b"NIL").nstring() is None
    assert Reader(b"nil").nstring() is None
    assert Reader(b'"NIL"').nstring() == b"NIL"
    with pytest.raises(ParseError):
        Reader(b"atom").nstring()


@pytest.mark.parametrize(
    ("method", "wire", "value"),
    [
        pytest.param("number", b"0", 0, id="number-zero"),
        pytest.param("number", b"4294967295", MAX_NUMBER, id="number-max"),
        pytest.param("number", b"007", 7, id="number-leading-zeros"),
        pytest.param("nz_number", b"1", 1, id="nz-number"),
        pytest.param("number64", b"9223372036854775807", MAX_NUMBER64, id="number64-max"),
    ],
)
def test_numbers(method: str, wire: bytes, value: int) -> None:
    assert getattr(Reader(wire), method)() == value


@pytest.mark.parametrize(
    ("method", "wire"),
    [
        pytest.param("number", b"4294967296", id="number-overflow"),
        pytest.param("number", b"-1", id="number-negative"),
        pytest.param("nz_number", b"0", id="nz-number-zero"),
        pytest.param("number64", b"9223372036854775808", id="number64-overflow"),
        pytest.param("number64", b"9" * 5000, id="huge-digit-string"),
    ],
)
def test_numbers_reject(method: str, wire: bytes) -> None:
    with pytest.raises(ParseError):
        getattr(Reader(wire), method)()


def _search_with_parens(depth: int) -> bytes:
    return b"A1 SEARCH " + b"(" * depth + b"ALL" + b")" * depth + b"\r\n"


def test_nesting_up_to_the_limit_parses() -> None:
    assert isinstance(parse_command(_search_with_parens(MAX_NESTING), 1000), Parsed)


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 10_000])
def test_nesting_beyond_the_limit_is_bad(depth: int) -> None:
    with pytest.raises(ParseError, match="nested"):
        parse_command(_search_with_parens(depth), 1000)


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        pytest.param(b"1-Feb-1994", date(1994, 2, 1), id="one-digit-day"),
        pytest.param(b"01-feb-1994", date(1994, 2, 1), id="lowercase-month"),
        pytest.param(b'"29-Feb-2024"', date(2024, 2, 29), id="quoted-leap-day"),
    ],
)
def test_date(wire: bytes, value: date) -> None:
    assert Reader(wire).date() == value


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"29-Feb-2023", id="not-a-leap-year"),
        pytest.param(b"1-Foo-1994", id="bad-month"),
        pytest.param(b"1994-02-01", id="iso-format"),
        pytest.param(b'"1-Feb-1994', id="unclosed-quote"),
        pytest.param(b"0-Feb-1994", id="day-zero"),
    ],
)
def test_date_rejects(wire: bytes) -> None:
    with pytest.raises(ParseError):
        Reader(wire).date()


MINUS_7 = timezone(-timedelta(hours=7))


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        pytest.param(
            b'"17-Jul-1996 02:44:25 -0700"', datetime(1996, 7, 17, 2, 44, 25, tzinfo=MINUS_7), id="rfc"
        ),
        pytest.param(
            b'" 7-Jul-1996 02:44:25 -0700"', datetime(1996, 7, 7, 2, 44, 25, tzinfo=MINUS_7), id="space-day"
        ),
        pytest.param(
            b'"07-Jul-1996 02:44:25 +0530"',
            datetime(1996, 7, 7, 2, 44, 25, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            id="positive-zone",
        ),
    ],
)
def test_date_time(wire: bytes, value: datetime) -> None:
    parsed = Reader(wire).date_time()
    assert parsed == value
    assert parsed.utcoffset() == value.utcoffset()


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b'"17-Jul-1996 25:44:25 -0700"', id="hour-25"),
        pytest.param(b'"17-Jul-1996 02:44:25 -0760"', id="zone-minutes-60"),
        pytest.param(b'"17-Jul-1996 02:44:25 +2400"', id="zone-24-hours"),
        pytest.param(b'"17-Jul-1996 02:44:25"', id="no-zone"),
        pytest.param(b"17-Jul-1996 02:44:25 -0700", id="unquoted"),
        pytest.param(b'"31-Apr-1996 02:44:25 -0700"', id="april-31"),
    ],
)
def test_date_time_rejects(wire: bytes) -> None:
    with pytest.raises(ParseError):
        Reader(wire).date_time()


def test_flag_list_canonical_system_flags_and_kept_keywords() -> None:
    r = Reader(b"(\\seen \\ANSWERED \\Flagged \\deleted \\draft \\recent $Forwarded Work \\X-Ext \\Seen)")
    assert r.flag_list() == (
        "\\Seen",
        "\\Answered",
        "\\Flagged",
        "\\Deleted",
        "\\Draft",
        "\\Recent",
        "$Forwarded",
        "Work",
        "\\X-Ext",
    )


MUTF7_VECTORS = [
    ("rfc3501", "~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("ampersand", "&", b"&-"),
    ("ampersand-in-name", "Tom & Jerry", b"Tom &- Jerry"),
    ("mixed", "Hi Mom -\u263a-!", b"Hi Mom -&Jjo--!"),
    ("latin1", "Entw\u00fcrfe", b"Entw&APw-rfe"),
    ("pound", "\u00a3", b"&AKM-"),
    ("emoji-surrogate-pair", "\U0001f4e7 mail", b"&2D3c5w- mail"),
    ("plain-ascii", "INBOX/Sent Items", b"INBOX/Sent Items"),
    ("empty", "", b""),
]


@pytest.mark.parametrize(("text", "wire"), [pytest.param(t, w, id=i) for i, t, w in MUTF7_VECTORS])
def test_mutf7_round_trip(text: str, wire: bytes) -> None:
    assert mutf7_encode(text) == wire
    assert mutf7_decode(wire) == text


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"&Jjo", id="unterminated"),
        pytest.param(b"&AGE-", id="encodes-printable-ascii"),
        pytest.param(b"&Jjp-", id="non-zero-pad-bits"),
        pytest.param(b"&2D0-", id="lone-surrogate"),
        pytest.param(b"&AA-", id="odd-utf16"),
        pytest.param(b"&U/BTFw-", id="slash-instead-of-comma"),
        pytest.param("Entwürfe".encode(), id="raw-8bit"),
        pytest.param(b"a\tb", id="control-char"),
    ],
)
def test_mutf7_rejects(wire: bytes) -> None:
    with pytest.raises(ValueError):
        mutf7_decode(wire)


@pytest.mark.parametrize(
    ("wire", "name"),
    [
        pytest.param(b"&AGE-", "&AGE-", id="encodes-printable-ascii"),
        pytest.param(b"&Jjo", "&Jjo", id="unterminated"),
        pytest.param(b"R&D", "R&D", id="bare-ampersand"),
        pytest.param(b'"&U/BTFw-"', "&U/BTFw-", id="quoted-slash"),
        pytest.param(b"inbox/&Jjp-", "inbox/&Jjp-", id="inbox-not-normalised"),
        pytest.param(b"{4}\r\n&AA-", "&AA-", id="literal-odd-utf16"),
    ],
)
def test_mailbox_keeps_invalid_mutf7_as_an_undecodable_name(wire: bytes, name: str) -> None:
    """RFC 3501 §5.1.3: modified UTF-7 is a convention; a printable name that breaks it is a
    name the server will not create, not a syntax error."""
    read = Reader(wire).mailbox()
    assert isinstance(read, UndecodableName) and read == name


def test_list_pattern_may_be_undecodable() -> None:
    pattern = Reader(b"&Jjo%").list_mailbox()
    assert isinstance(pattern, UndecodableName) and pattern == "&Jjo%"
    assert not isinstance(Reader(b"&ZeVnLIqe-%").list_mailbox(), UndecodableName)


def test_mailbox_rejects_undecodable_octets_and_control_characters() -> None:
    with pytest.raises(ParseError, match="modified UTF-7"):
        Reader("{9}\r\nEntwürfe".encode()).mailbox()  # 8-bit without UTF8=ACCEPT
    with pytest.raises(ParseError, match="modified UTF-7"):
        Reader(b'"a\x01b"').mailbox()
    with pytest.raises(ParseError, match="control"):
        Reader(b'"a\x7fb"', utf8=True).mailbox()
    with pytest.raises(ParseError, match="UTF-8"):
        Reader(b"{2}\r\n\xc3(", utf8=True).mailbox()


@pytest.mark.parametrize(
    ("value", "utf8", "wire"),
    [
        pytest.param("abc", False, b'"abc"', id="plain"),
        pytest.param("", False, b'""', id="empty"),
        pytest.param('say "hi" \\o/', False, b'"say \\"hi\\" \\\\o/"', id="escapes"),
        pytest.param("two\r\nlines", False, b"{10}\r\ntwo\r\nlines", id="crlf-literal"),
        pytest.param("Grüße", False, b"{7}\r\nGr\xc3\xbc\xc3\x9fe", id="8bit-literal"),
        pytest.param("Grüße", True, '"Grüße"'.encode(), id="8bit-quoted-when-utf8"),
        pytest.param(b"\xff\xfe", True, b"{2}\r\n\xff\xfe", id="invalid-utf8-literal"),
    ],
)
def test_quote_string(value: str | bytes, utf8: bool, wire: bytes) -> None:
    assert quote_string(value, utf8=utf8) == wire


def test_quote_string_round_trips_through_the_parser() -> None:
    for value in ["plain", 'q"uo\\te', "", "x" * 300]:
        assert Reader(quote_string(value)).string() == value.encode()


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        pytest.param("FROM", b"FROM", id="atom"),
        pytest.param("X-%", b'"X-%"', id="wildcard-quoted"),
        pytest.param("NIL", b'"NIL"', id="nil-quoted"),
        pytest.param("", b'""', id="empty-quoted"),
        pytest.param("a b", b'"a b"', id="space-quoted"),
    ],
)
def test_format_astring(value: str, wire: bytes) -> None:
    assert format_astring(value) == wire


def test_format_mailbox() -> None:
    assert format_mailbox("\u53f0\u5317") == b'"&U,BTFw-"'
    assert format_mailbox("\u53f0\u5317", utf8=True) == '"台北"'.encode()
    assert format_mailbox("INBOX") == b'"INBOX"'


def test_format_flags() -> None:
    assert format_flags(["\\Seen", "$Label1"]) == "(\\Seen $Label1)"
    assert format_flags([]) == "()"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(
            datetime(1996, 7, 17, 2, 44, 25, tzinfo=MINUS_7), '"17-Jul-1996 02:44:25 -0700"', id="rfc"
        ),
        pytest.param(datetime(2024, 1, 5, 9, 3, 7), '"05-Jan-2024 09:03:07 +0000"', id="naive-is-utc"),
        pytest.param(
            datetime(2024, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=5, minutes=45))),
            '"31-Dec-2024 23:59:59 +0545"',
            id="nepal",
        ),
    ],
)
def test_imap_datetime(value: datetime, text: str) -> None:
    assert imap_datetime(value) == text
    assert Reader(text.encode()).date_time() == value.replace(tzinfo=value.tzinfo or UTC)
