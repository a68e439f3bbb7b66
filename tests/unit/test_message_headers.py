"""Header sections, encoded words, Content-Type parameters, charsets, transfer encodings."""

from __future__ import annotations

import time

import pytest

from relate.message.charset import clean, codec_for, decode_text
from relate.message.encoded_words import decode_words
from relate.message.headers import Header, scan_header
from relate.message.params import param, parse_content_type, parse_disposition
from relate.message.transfer import b64decode, qpdecode

# -- header sections -------------------------------------------------------------------------

SCAN = [
    ("crlf", b"Subject: a\r\nFrom: b\r\n\r\nbody", ["subject", "from"], 23),
    ("lf", b"Subject: a\nFrom: b\n\nbody", ["subject", "from"], 20),
    ("mixed-endings", b"Subject: a\r\nFrom: b\n\r\nbody", ["subject", "from"], 22),
    ("no-empty-line", b"Subject: a\r\nFrom: b\r\n", ["subject", "from"], 21),
    ("no-final-newline", b"Subject: a", ["subject"], 10),
    ("empty-input", b"", [], 0),
    ("body-only", b"hello world\r\n\r\nmore", [], 0),
    ("starts-with-crlf", b"\r\nbody", [], 2),
    ("starts-with-lf", b"\nbody", [], 1),
    ("only-crlfs", b"\r\n\r\n\r\n", [], 2),
    ("folded", b"Subject: a\r\n b\r\n\tc\r\n\r\n", ["subject"], 22),
    ("garbage-line-skipped", b"A: 1\r\ngarbage\r\nB: 2\r\n\r\nx", ["a", "b"], 23),
    ("blank-before-colon", b"Subject : x\r\n\r\n", ["subject"], 15),
    ("bare-cr-is-data", b"A: 1\rB: 2\r\n\r\n", ["a"], 13),
    ("mbox-postmark-skipped", b"From a@b Mon Jan 1\r\nSubject: x\r\n\r\n", ["subject"], 34),
    ("mbox-postmark-alone", b"From a@b Mon Jan 1\r\n\r\nbody", [], 0),
    ("obsolete-from-field", b"From : a@b\r\n\r\n", ["from"], 14),
    ("continuation-first", b" folded\r\nSubject: x\r\n\r\n", [], 0),
    ("whitespace-only-continuation", b"A: 1\r\n \r\nB: 2\r\n\r\n", ["a", "b"], 17),
    ("nul-in-value", b"A: \x00\r\n\r\n", ["a"], 8),
]


@pytest.mark.parametrize(("raw", "names", "end"), [c[1:] for c in SCAN], ids=[c[0] for c in SCAN])
def test_scan_header(raw: bytes, names: list[str], end: int) -> None:
    fields, header_end = scan_header(raw, 0, len(raw))
    assert [f.name for f in fields] == names
    assert header_end == end


def test_field_offsets_slice_the_raw_field() -> None:
    raw = b"Subject: a\r\n b\r\nTo: x@y\r\n\r\n"
    fields, _ = scan_header(raw, 0, len(raw))
    assert [raw[f.start : f.end] for f in fields] == [b"Subject: a\r\n b\r\n", b"To: x@y\r\n"]
    assert [raw[f.value_start : f.end] for f in fields] == [b" a\r\n b\r\n", b" x@y\r\n"]


def test_scan_stays_inside_its_region() -> None:
    raw = b"junk A: 1\r\nB: 2\r\n\r\nafter"
    fields, end = scan_header(raw, 5, 16)
    assert [f.name for f in fields] == ["a", "b"]
    assert end == 16


VALUES = [
    ("unfolded", b"Subject: a\r\n b\r\n\r\n", "a b"),
    ("tab-fold", b"Subject: a\r\n\tb\r\n\r\n", "a\tb"),
    ("stripped", b"Subject:   a  \r\n\r\n", "a"),
    ("empty", b"Subject:\r\n\r\n", ""),
    ("first-wins", b"Subject: one\r\nSubject: two\r\n\r\n", "one"),
    ("case-insensitive", b"SUBJECT: a\r\n\r\n", "a"),
    ("utf8-raw", "Subject: Grüße\r\n\r\n".encode(), "Grüße"),
    ("latin1-raw", "Subject: Grüße\r\n\r\n".encode("latin-1"), "Grüße"),
    ("cp1252-raw", b"Subject: \x93quoted\x94\r\n\r\n", "\u201cquoted\u201d"),
    ("nul-dropped", b"Subject: a\x00b\r\n\r\n", "ab"),
    ("encoded-words-kept", b"Subject: =?utf-8?q?x?=\r\n\r\n", "=?utf-8?q?x?="),
]


@pytest.mark.parametrize(("raw", "value"), [c[1:] for c in VALUES], ids=[c[0] for c in VALUES])
def test_header_value(raw: bytes, value: str) -> None:
    header = Header(raw, scan_header(raw, 0, len(raw))[0])
    assert header.value("subject") == value


def test_header_absent_and_huge_value_capped() -> None:
    raw = b"Subject: " + b"x" * 200_000 + b"\r\n\r\n"
    header = Header(raw, scan_header(raw, 0, len(raw))[0])
    assert header.value("to") is None
    assert "to" not in header
    assert len(header.value("subject") or "") == 64 * 1024 - 1


# -- RFC 2047 encoded words -------------------------------------------------------------------

WORDS = [
    ("q", "=?utf-8?q?J=C3=B6rg?=", "Jörg"),
    ("b", "=?UTF-8?B?w6k=?=", "é"),
    ("underscore-is-space", "=?utf-8?q?a_b?=", "a b"),
    ("adjacent-joined", "=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=", "ab"),
    ("folded-adjacent", "=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"),
    ("text-between-kept", "=?utf-8?q?a?= b =?utf-8?q?c?=", "a b c"),
    ("split-character", "=?utf-8?b?ww==?= =?utf-8?b?qQ==?=", "é"),
    ("different-charsets", "=?utf-8?q?=C3=A9?= =?iso-8859-1?q?=E9?=", "éé"),
    ("no-space-before", "Re:=?utf-8?q?x?=", "Re:x"),
    ("garbage-base64", "=?utf-8?b?!!w6k*?=", "é"),
    ("bad-padding", "=?utf-8?b?w6k?=", "é"),
    ("unknown-charset", "=?x-klingon?q?abc?=", "abc"),
    ("unknown-charset-8bit", "=?x-unknown?q?=C3=A9?=", "é"),
    ("refused-codec", "=?punycode?q?abc-?=", "abc-"),
    ("language-suffix", "=?utf-8*en?q?hi?=", "hi"),
    ("not-an-encoding", "=?utf-8?x?abc?=", "=?utf-8?x?abc?="),
    ("unterminated", "=?utf-8?q?abc", "=?utf-8?q?abc"),
    ("nested", "=?utf-8?q?=?utf-8?q?abc?=?=", "=?utf-8?q?abc?="),
    ("plain", "nothing here", "nothing here"),
    ("nul-in-word", "=?utf-8?q?a=00b?=", "ab"),
    ("utf7-surrogate", "=?utf-7?q?+2D3-?=", "\ufffd"),
]


@pytest.mark.parametrize(("text", "decoded"), [c[1:] for c in WORDS], ids=[c[0] for c in WORDS])
def test_decode_words(text: str, decoded: str) -> None:
    assert decode_words(text) == decoded


@pytest.mark.usefixtures("no_gc")
def test_thousands_of_encoded_words_are_fast() -> None:
    text = " ".join(["=?utf-8?b?w6k=?="] * 20_000)
    started = time.process_time()
    assert decode_words(text) == "é" * 20_000
    assert time.process_time() - started < 1


# -- Content-Type and Content-Disposition ---------------------------------------------------

CONTENT_TYPES = [
    ("simple", 'text/plain; charset="utf-8"', ("text", "plain"), [("charset", "utf-8")]),
    ("uppercase", "TEXT/HTML; CHARSET=UTF-8", ("text", "html"), [("charset", "UTF-8")]),
    ("no-subtype", "text; charset=utf-8", None, [("charset", "utf-8")]),
    ("empty", "", None, []),
    ("spaces-around-slash", "text / plain", ("text", "plain"), []),
    (
        "escaped-quote",
        r'multipart/mixed; boundary="a\"b\\c"',
        ("multipart", "mixed"),
        [("boundary", 'a"b\\c')],
    ),
    ("semicolon-in-quotes", 'a/b; x="1;2"; y=3', ("a", "b"), [("x", "1;2"), ("y", "3")]),
    (
        "comments",
        "text/plain (a comment); charset=us-ascii (another)",
        ("text", "plain"),
        [("charset", "us-ascii")],
    ),
    ("nested-comment", "text/plain ((nested) x); a=1", ("text", "plain"), [("a", "1")]),
    ("paren-in-quotes", 'a/b; x="(kept)"', ("a", "b"), [("x", "(kept)")]),
    ("spaces-around-equals", "a/b; x = 1 ; y= 2", ("a", "b"), [("x", "1"), ("y", "2")]),
    ("attribute-without-value", "a/b; flag; x=1", ("a", "b"), [("x", "1")]),
    ("stray-semicolons", "a/b;; ; x=1;", ("a", "b"), [("x", "1")]),
    ("unclosed-quote", 'a/b; name="abc', ("a", "b"), [("name", "abc")]),
    ("garbage-after-quote", 'a/b; x="1" junk; y=2', ("a", "b"), [("x", "1"), ("y", "2")]),
    ("windows-path", r'a/b; name="C:\dir\f.txt"', ("a", "b"), [("name", r"C:\dir\f.txt")]),
    (
        "rfc2231-continuation",
        'application/pdf; name*0="long"; name*1="name.pdf"',
        ("application", "pdf"),
        [("name", "longname.pdf")],
    ),
    (
        "rfc2231-out-of-order",
        "a/b; name*1=b; name*0=a; x=1",
        ("a", "b"),
        [("name", "ab"), ("x", "1")],
    ),
    ("rfc2231-extended", "a/b; name*=utf-8''%E2%82%AC.pdf", ("a", "b"), [("name*", "utf-8''%E2%82%AC.pdf")]),
    (
        "rfc2231-mixed-sections",
        "a/b; name*0*=utf-8''%E2%82%AC; name*1=\" rate.pdf\"",
        ("a", "b"),
        [("name*", "utf-8''%E2%82%AC%20rate.pdf")],
    ),
]


@pytest.mark.parametrize(
    ("value", "media", "params"), [c[1:] for c in CONTENT_TYPES], ids=[c[0] for c in CONTENT_TYPES]
)
def test_parse_content_type(value: str, media: tuple[str, str] | None, params: list[tuple[str, str]]) -> None:
    assert parse_content_type(value) == (media, params)


PARAMS = [
    ("plain", [("name", "a.pdf")], "a.pdf"),
    ("encoded-word", [("name", "=?utf-8?q?R=C3=A9sum=C3=A9.pdf?=")], "Résumé.pdf"),
    ("extended", [("name*", "utf-8''R%C3%A9sum%C3%A9.pdf")], "Résumé.pdf"),
    ("extended-wins", [("name", "fallback"), ("name*", "utf-8'en'x%20y")], "x y"),
    ("extended-latin1", [("name*", "iso-8859-1''%E9")], "é"),
    ("extended-no-charset", [("name*", "%C3%A9")], "é"),
    ("extended-bad-percent", [("name*", "utf-8''%ZZ%")], "%ZZ%"),
    ("absent", [("other", "x")], None),
]


@pytest.mark.parametrize(("params", "value"), [c[1:] for c in PARAMS], ids=[c[0] for c in PARAMS])
def test_param_decodes(params: list[tuple[str, str]], value: str | None) -> None:
    assert param(params, "name") == value


DISPOSITIONS = [
    ("attachment", 'attachment; filename="a.pdf"', ("attachment", [("filename", "a.pdf")])),
    ("inline-upper", "INLINE", ("inline", [])),
    ("missing-type", "; filename=a.pdf", ("attachment", [("filename", "a.pdf")])),
    ("empty", "", None),
]


@pytest.mark.parametrize(("value", "parsed"), [c[1:] for c in DISPOSITIONS], ids=[c[0] for c in DISPOSITIONS])
def test_parse_disposition(value: str, parsed: tuple[str, list[tuple[str, str]]] | None) -> None:
    assert parse_disposition(value) == parsed


# -- charsets ---------------------------------------------------------------------------------

CODECS = [
    ("utf-8", "UTF-8", "utf-8"),
    ("quoted", '"utf-8"', "utf-8"),
    ("us-ascii-guesses", "us-ascii", "ascii"),
    ("latin1-as-cp1252", "ISO-8859-1", "cp1252"),
    ("gb2312-superset", "gb2312", "gb18030"),
    ("korean", "ks_c_5601-1987", "cp949"),
    ("hebrew-logical", "iso-8859-8-i", "iso8859-8"),
    ("unknown", "x-klingon", None),
    ("none", None, None),
    ("not-a-text-codec", "base64", None),
    ("compression", "zlib", None),
    ("punycode-refused", "punycode", None),
    ("escape-refused", "unicode_escape", None),
    ("garbage-label", "utf-8; rm -rf", None),
    ("overlong-label", "u" * 100, None),
]


@pytest.mark.parametrize(("label", "codec"), [c[1:] for c in CODECS], ids=[c[0] for c in CODECS])
def test_codec_for(label: str | None, codec: str | None) -> None:
    assert codec_for(label) == codec


DECODES = [
    ("declared", "é".encode("iso-8859-15"), "iso-8859-15", "é"),
    ("ascii-label-utf8-bytes", "é".encode(), "us-ascii", "é"),
    ("no-label-cp1252", b"\x93x\x94", None, "\u201cx\u201d"),
    ("unknown-label-utf8", "日本".encode(), "x-foo", "日本"),
    ("bad-utf8-replaced", b"a\xffb", "utf-8", "a\ufffdb"),
    ("nul-dropped", b"a\x00b", "utf-8", "ab"),
    ("utf16-odd-length", b"a\x00b", "utf-16-le", "a\ufffd"),
    ("shift-jis", "日本".encode("cp932"), "shift_jis", "日本"),
]


@pytest.mark.parametrize(("data", "label", "text"), [c[1:] for c in DECODES], ids=[c[0] for c in DECODES])
def test_decode_text(data: bytes, label: str | None, text: str) -> None:
    assert decode_text(data, label) == text


def test_clean_replaces_lone_surrogates() -> None:
    assert clean("a\ud800b") == "a\ufffdb"
    assert clean("ok") == "ok"


# -- transfer encodings -------------------------------------------------------------------

BASE64 = [
    ("clean", b"SGVsbG8=", b"Hello"),
    ("lines", b"SGVs\r\nbG8=\r\n", b"Hello"),
    ("missing-padding", b"SGVsbG8", b"Hello"),
    ("garbage-chars", b"SG*Vs bG8!=", b"Hello"),
    ("concatenated-chunks", b"SGk=\r\nSGk=", b"HiHi"),
    ("lone-sextet", b"SGVsbG8=Q", b"Hello"),
    ("empty", b"", b""),
    ("only-garbage", b"!!!***", b""),
]


@pytest.mark.parametrize(("data", "decoded"), [c[1:] for c in BASE64], ids=[c[0] for c in BASE64])
def test_b64decode(data: bytes, decoded: bytes) -> None:
    assert b64decode(data) == decoded


QP = [
    ("escape", b"a=3Db", b"a=b"),
    ("soft-break-crlf", b"long=\r\nline", b"longline"),
    ("soft-break-lf", b"long=\nline", b"longline"),
    ("bad-escape-kept", b"a=ZZb", b"a=ZZb"),
    ("trailing-equals", b"a=", b"a"),
    ("lowercase-hex", b"=c3=a9", "é".encode()),
]


@pytest.mark.parametrize(("data", "decoded"), [c[1:] for c in QP], ids=[c[0] for c in QP])
def test_qpdecode(data: bytes, decoded: bytes) -> None:
    assert qpdecode(data) == decoded


@pytest.mark.parametrize(
    "value",
    [
        "a/b; " + 'x="' * 30_000,
        "a/b; " + "x*1*=y;" * 20_000,
        "a/b " + "(" * 60_000,
        "a/b; " + "\\" * 60_000,
        'a/b; x="' + '\\"' * 30_000,
        "a/b; " + "=" * 60_000,
    ],
    ids=["open-quotes", "continuations", "open-comments", "backslashes", "escaped-quotes", "equals"],
)
@pytest.mark.usefixtures("no_gc")
def test_hostile_parameters_are_linear(value: str) -> None:
    started = time.process_time()
    parse_content_type(value)
    assert time.process_time() - started < 1
