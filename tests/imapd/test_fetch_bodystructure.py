"""ENVELOPE, BODY and BODYSTRUCTURE: byte-exact, from stored metadata only."""

from __future__ import annotations

import pytest

from relate.imapd.bodystructure import MAX_QUOTED, body_structure, envelope, nstring
from relate.message import parse_message
from tests.imapd.test_fetch_sections import MESSAGES, PARSED, fetch, lit

ALT_IN_MIXED = (
    b"From: Grace <grace@example.com>\r\n"
    b"Subject: photo\r\n"
    b'Content-Type: multipart/mixed; boundary="m"\r\n'
    b"Content-Disposition: inline\r\n"
    b"Content-Language: en\r\n"
    b"Content-Location: msg\r\n"
    b"\r\n"
    b"--m\r\n"
    b'Content-Type: multipart/alternative; boundary="a"\r\n'
    b"\r\n"
    b"--a\r\n"
    b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=C3=A9\r\n"
    b"--a\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n" + "<p>café</p>".encode() + b"\r\n"
    b"--a--\r\n"
    b"--m\r\n"
    b'Content-Type: image/png; name="dot.png"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-ID: <dot@example.com>\r\n"
    b"Content-Description: a dot\r\n"
    b'Content-Disposition: inline; filename="dot.png"; size=4\r\n'
    b"Content-Language: en, de\r\n"
    b"Content-Location: http://example.com/dot.png\r\n"
    b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
    b"\r\n"
    b"iVBORw==\r\n"
    b"--m--\r\n"
)

EIGHT_BIT = (
    b"From: =?utf-8?q?Fran=C3=A7ois?= <francois@example.fr>\r\n"
    + 'To: "Jörg Müller" <joerg@example.de>, undisclosed-recipients:;\r\n'.encode()
    + b"Cc: Ren\xe9 <rene@example.fr>\r\n"  # Latin-1, not UTF-8
    b"Subject: =?iso-8859-1?q?Gr=FC=DFe?= \"quoted\" back\\slash\r\n"
    b"Date: Wed, 4 Mar 2026 10:00:00 +0100\r\n"
    b"In-Reply-To: <a@example.fr>\r\n"
    b"Message-ID: <c@example.fr>\r\n"
    + 'Content-Type: text/plain; charset=utf-8; name="Grüße.txt"\r\n'.encode()
    + "Content-Description: Überblick\r\n".encode()
    + b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n" + "Grüße\r\n".encode()
)

BASE64_MESSAGE = (
    b"Content-Type: message/rfc822\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"U3ViamVjdDogaGkNCg0KYm9keQ==\r\n"
)

NESTED_EMBEDDED_ENVELOPE = (
    b'("Mon, 2 Mar 2026 08:00:00 -0500" "report" (("Erin" NIL "erin" "example.com")) '
    b'(("Erin" NIL "erin" "example.com")) (("Erin" NIL "erin" "example.com")) NIL NIL NIL NIL NIL)'
)

STRUCTURES = [
    # (message bytes, BODYSTRUCTURE, BODY)
    (
        MESSAGES["simple"],
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 19 2 NIL NIL NIL NIL)',
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 19 2)',
    ),
    (
        MESSAGES["lf-only"],
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 17 2 NIL NIL NIL NIL)',
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 17 2)',
    ),
    (
        MESSAGES["header-only"],
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL)',
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0)',
    ),
    (
        MESSAGES["nested"],
        b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 26 1 NIL NIL NIL NIL)'
        b'("MESSAGE" "RFC822" NIL NIL "forwarded" "7BIT" 257 ' + NESTED_EMBEDDED_ENVELOPE + b" "
        b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 12 1 NIL NIL NIL NIL)'
        b'("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 18 1 NIL NIL NIL NIL) '
        b'"ALTERNATIVE" ("BOUNDARY" "inner") NIL NIL NIL) 14 NIL NIL NIL NIL)'
        b'("APPLICATION" "PDF" ("NAME" "r.pdf") NIL NIL "BASE64" 8 NIL ("ATTACHMENT" ("FILENAME" "r.pdf")) NIL NIL) '
        b'"MIXED" ("BOUNDARY" "outer") NIL NIL NIL)',
        b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 26 1)'
        b'("MESSAGE" "RFC822" NIL NIL "forwarded" "7BIT" 257 ' + NESTED_EMBEDDED_ENVELOPE + b" "
        b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 12 1)'
        b'("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 18 1) "ALTERNATIVE") 14)'
        b'("APPLICATION" "PDF" ("NAME" "r.pdf") NIL NIL "BASE64" 8) "MIXED")',
    ),
    (
        ALT_IN_MIXED,
        b'((("TEXT" "PLAIN" ("CHARSET" "utf-8" "FORMAT" "flowed") NIL NIL "QUOTED-PRINTABLE" 9 1 NIL NIL NIL NIL)'
        b'("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 12 1 NIL NIL NIL NIL) '
        b'"ALTERNATIVE" ("BOUNDARY" "a") NIL NIL NIL)'
        b'("IMAGE" "PNG" ("NAME" "dot.png") "<dot@example.com>" "a dot" "BASE64" 8 "Q2hlY2sgSW50ZWdyaXR5IQ==" '
        b'("INLINE" ("FILENAME" "dot.png" "SIZE" "4")) ("en" "de") "http://example.com/dot.png") '
        b'"MIXED" ("BOUNDARY" "m") ("INLINE" NIL) ("en") "msg")',
        b'((("TEXT" "PLAIN" ("CHARSET" "utf-8" "FORMAT" "flowed") NIL NIL "QUOTED-PRINTABLE" 9 1)'
        b'("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 12 1) "ALTERNATIVE")'
        b'("IMAGE" "PNG" ("NAME" "dot.png") "<dot@example.com>" "a dot" "BASE64" 8) "MIXED")',
    ),
    (
        MESSAGES["encodings"],
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 29 2 NIL NIL NIL NIL)'
        b'("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BINARY" 3 NIL NIL NIL NIL)'
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "x-uuencode" 11 1 NIL NIL NIL NIL)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "BASE64" 28 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "b") NIL NIL NIL)',
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 29 2)'
        b'("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BINARY" 3)'
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "x-uuencode" 11 1)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "BASE64" 28) "MIXED")',
    ),
    (
        # A message/rfc822 the parser left closed (base64) is a basic body: no envelope, no lines.
        BASE64_MESSAGE,
        b'("MESSAGE" "RFC822" NIL NIL NIL "BASE64" 30 NIL NIL NIL NIL)',
        b'("MESSAGE" "RFC822" NIL NIL NIL "BASE64" 30)',
    ),
    (
        EIGHT_BIT,
        b'("TEXT" "PLAIN" ("CHARSET" "utf-8" "NAME" ' + lit("Grüße.txt".encode()) + b") NIL "
        + lit("Überblick".encode())
        + b' "8BIT" 9 1 NIL NIL NIL NIL)',
        b'("TEXT" "PLAIN" ("CHARSET" "utf-8" "NAME" ' + lit("Grüße.txt".encode()) + b") NIL "
        + lit("Überblick".encode())
        + b' "8BIT" 9 1)',
    ),
]
STRUCTURE_IDS = ["simple", "lf-only", "header-only", "nested", "alternative-in-mixed", "encodings",
                 "base64-message-rfc822", "eight-bit"]


@pytest.mark.parametrize(("raw", "extensible", "plain"), STRUCTURES, ids=STRUCTURE_IDS)
def test_bodystructure_and_body(raw: bytes, extensible: bytes, plain: bytes) -> None:
    top = parse_message(raw).body
    assert body_structure(top) == extensible
    assert body_structure(top, extensible=False) == plain


def test_bodystructure_eight_bit_with_utf8_enabled() -> None:
    top = parse_message(EIGHT_BIT).body
    assert body_structure(top, utf8=True) == (
        '("TEXT" "PLAIN" ("CHARSET" "utf-8" "NAME" "Grüße.txt") NIL "Überblick" "8BIT" 9 1 NIL NIL NIL NIL)'.encode()
    )


def test_fetch_renders_body_and_bodystructure_items() -> None:
    assert fetch("simple", "(BODY BODYSTRUCTURE)") == (
        b'* 1 FETCH (BODY ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 19 2) '
        b'BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 19 2 NIL NIL NIL NIL))\r\n'
    )


# -- ENVELOPE --------------------------------------------------------------------------------

SIMPLE_ENVELOPE = (
    b'("Mon, 2 Mar 2026 12:00:00 +0100" "Lunch" (("Alice" NIL "alice" "example.com")) '
    b'(("Alice" NIL "alice" "example.com")) (("Alice" NIL "alice" "example.com")) '
    b'((NIL NIL "bob" "example.org")) NIL NIL NIL "<m1@example.com>")'
)
FRANCOIS = b'(("=?utf-8?q?Fran=C3=A7ois?=" NIL "francois" "example.fr"))'
EIGHT_BIT_TAIL = b' NIL "<a@example.fr>" "<c@example.fr>")'

ENVELOPES = [
    # (message, utf8, ENVELOPE)
    (MESSAGES["simple"], False, SIMPLE_ENVELOPE),
    (
        MESSAGES["lf-only"],
        False,
        b'(NIL "folded over two lines" ((NIL NIL "alice" "example.com")) ((NIL NIL "alice" "example.com")) '
        b'((NIL NIL "alice" "example.com")) NIL NIL NIL NIL NIL)',
    ),
    (MESSAGES["no-header"], False, b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"),
    (
        EIGHT_BIT,
        False,
        b'("Wed, 4 Mar 2026 10:00:00 +0100" "=?iso-8859-1?q?Gr=FC=DFe?= \\"quoted\\" back\\\\slash" '
        + FRANCOIS + b" " + FRANCOIS + b" " + FRANCOIS + b" "
        b"((" + lit("Jörg Müller".encode()) + b' NIL "joerg" "example.de")'
        b'(NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) '
        b"((" + lit("René".encode()) + b' NIL "rene" "example.fr"))' + EIGHT_BIT_TAIL,
    ),
    (
        EIGHT_BIT,
        True,
        b'("Wed, 4 Mar 2026 10:00:00 +0100" "=?iso-8859-1?q?Gr=FC=DFe?= \\"quoted\\" back\\\\slash" '
        + FRANCOIS + b" " + FRANCOIS + b" " + FRANCOIS + b" "
        + '(("Jörg Müller" NIL "joerg" "example.de")'.encode()
        + b'(NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) '
        + '(("René" NIL "rene" "example.fr"))'.encode() + EIGHT_BIT_TAIL,
    ),
]


@pytest.mark.parametrize(
    ("raw", "utf8", "expected"), ENVELOPES, ids=["simple", "lf-only", "no-header", "eight-bit", "eight-bit-utf8"]
)
def test_envelope(raw: bytes, utf8: bool, expected: bytes) -> None:
    assert envelope(parse_message(raw).envelope, utf8=utf8) == expected


def test_fetch_envelope_item() -> None:
    assert fetch("simple", "ENVELOPE") == b"* 1 FETCH (ENVELOPE " + SIMPLE_ENVELOPE + b")\r\n"
    assert PARSED["simple"].envelope[1] == "Lunch"


NSTRINGS = [
    ("nil", None, False, b"NIL"),
    ("empty", "", False, b'""'),
    ("plain", "Lunch", False, b'"Lunch"'),
    ("specials", 'say "hi" \\o/', False, b'"say \\"hi\\" \\\\o/"'),
    ("tab", "a\tb", False, b'"a\tb"'),
    ("bare-cr", "a\rb", False, b"{3}\r\na\rb"),
    ("newline", "a\nb", True, b"{3}\r\na\nb"),
    ("eight-bit", "é", False, b"{2}\r\n\xc3\xa9"),
    ("eight-bit-utf8", "é", True, b'"\xc3\xa9"'),
    ("long", "x" * (MAX_QUOTED + 1), False, b"{%d}\r\n" % (MAX_QUOTED + 1) + b"x" * (MAX_QUOTED + 1)),
    ("at-limit", "x" * MAX_QUOTED, False, b'"' + b"x" * MAX_QUOTED + b'"'),
]


@pytest.mark.parametrize(("value", "utf8", "expected"), [n[1:] for n in NSTRINGS], ids=[n[0] for n in NSTRINGS])
def test_nstring(value: str | None, utf8: bool, expected: bytes) -> None:
    assert nstring(value, utf8=utf8) == expected


def test_envelope_tolerates_short_or_missing_lists() -> None:
    assert envelope(None) == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert envelope(["d", "s"]) == b'("d" "s" NIL NIL NIL NIL NIL NIL NIL NIL)'
    assert envelope([None, None, [["n", None, "m"]]]) == b'(NIL NIL (("n" NIL "m" NIL)) NIL NIL NIL NIL NIL NIL NIL)'
