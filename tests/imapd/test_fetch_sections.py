"""BODY[section]<partial>, RFC822.*, BINARY[part] and BINARY.SIZE: byte-exact FETCH responses
for tricky messages, rendered through the real FETCH parser and render_fetch."""

from __future__ import annotations

import datetime as dt

import pytest

from relate.imapd.commands import Fetch
from relate.imapd.fetch import MessageCache, render_fetch
from relate.imapd.fetchatt import FetchAtt
from relate.imapd.parse import Parsed, parse_command
from relate.imapd.sections import UnknownCte
from relate.message import ParsedMessage, parse_message
from relate.store.types import EntryInfo

# -- the corpus ------------------------------------------------------------------------------

SIMPLE_HEADER = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: Lunch\r\n"
    b"Date: Mon, 2 Mar 2026 12:00:00 +0100\r\n"
    b"Message-ID: <m1@example.com>\r\n"
    b"\r\n"
)
SIMPLE_BODY = b"Hi Bob.\r\nSee you.\r\n"
SIMPLE = SIMPLE_HEADER + SIMPLE_BODY

LF_ONLY_HEADER = (
    b"From Alice@example.com Mon Mar  2 12:00:00 2026\n"  # an mbox postmark, part of no field
    b"From: alice@example.com\n"
    b"Subject: folded\n"
    b" over two lines\n"
    b"X-Note: x\n"
    b"\n"
)
LF_ONLY_BODY = b"line one\nline two"
LF_ONLY = LF_ONLY_HEADER + LF_ONLY_BODY

EMBEDDED_HEADER = (
    b"From: Erin <erin@example.com>\r\n"
    b"Subject: report\r\n"
    b"Date: Mon, 2 Mar 2026 08:00:00 -0500\r\n"
    b"Content-Type: multipart/alternative; boundary=inner\r\n"
    b"\r\n"
)
EMBEDDED_BODY = (
    b"--inner\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"plain report\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>html report</p>\r\n"
    b"--inner--"
)
EMBEDDED = EMBEDDED_HEADER + EMBEDDED_BODY
NESTED_HEADER = (
    b"From: Carol <carol@example.net>\r\n"
    b"To: Dave <dave@example.org>\r\n"
    b"Subject: Fwd: report\r\n"
    b"Date: Tue, 3 Mar 2026 09:15:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
)
PART2_MIME = b"Content-Type: message/rfc822\r\nContent-Description: forwarded\r\n\r\n"
PART3_MIME = (
    b'Content-Type: application/pdf; name="r.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="r.pdf"\r\n'
    b"\r\n"
)
NESTED_BODY = (
    b"This is a multi-part message.\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"See the forwarded message.\r\n"
    b"--outer\r\n" + PART2_MIME + EMBEDDED + b"\r\n"
    b"--outer\r\n" + PART3_MIME + b"JVBERi0=\r\n"
    b"--outer--\r\n"
)
NESTED = NESTED_HEADER + NESTED_BODY

BINARY_PART_MIME = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
ENCODINGS = (
    b"Subject: encodings\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n"
    b"\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=C3=BC=C3=9Fe, soft=\r\n"
    b"break\r\n"
    b"--b\r\n" + BINARY_PART_MIME + b"a\x00b\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: x-uuencode\r\n"
    b"\r\n"
    b"begin 644 x\r\n"
    b"--b\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"U3ViamVjdDogaGkNCg0KYm9keQ==\r\n"
    b"--b--\r\n"
)
NO_HEADER = b"Just a body\r\nwithout any header.\r\n"
HEADER_ONLY = b"Subject: nothing else\r\nFrom: a@example.com"  # no blank line, no final line break

MESSAGES = {
    "simple": SIMPLE,
    "lf-only": LF_ONLY,
    "nested": NESTED,
    "encodings": ENCODINGS,
    "no-header": NO_HEADER,
    "header-only": HEADER_ONLY,
}
PARSED = {name: parse_message(raw) for name, raw in MESSAGES.items()}
WHEN = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


def lit(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def entry_for(name: str) -> EntryInfo:
    body_id = list(MESSAGES).index(name) + 1
    return EntryInfo(
        id=body_id, mailbox_id=1, uid=10 + body_id, modseq=5, body_id=body_id, size=len(MESSAGES[name]),
        internal_date=WHEN, flags=frozenset(),
    )


def cache() -> MessageCache:
    names = list(MESSAGES)

    def raw(body_id: int) -> bytes:
        return MESSAGES[names[body_id - 1]]

    def parsed(body_id: int) -> ParsedMessage:
        return PARSED[names[body_id - 1]]

    return MessageCache(load_raw=raw, load_parsed=parsed, load_parsed_many=lambda ids: {i: parsed(i) for i in ids})


def items(wire: str) -> tuple[FetchAtt, ...]:
    result = parse_command(b"A1 FETCH 1 " + wire.encode() + b"\r\n", 1000)
    assert isinstance(result, Parsed) and isinstance(result.command, Fetch)
    return result.command.attributes


def fetch(name: str, wire: str, **kwargs: object) -> bytes:
    return b"".join(render_fetch(entry_for(name), 1, items(wire), cache(), **kwargs))  # type: ignore[arg-type]


# -- BODY[section] ---------------------------------------------------------------------------

SECTIONS = [
    # (message, FETCH items, the response's data item)
    ("simple", "BODY[]", b"BODY[] " + lit(SIMPLE)),
    ("simple", "BODY.PEEK[]", b"BODY[] " + lit(SIMPLE)),
    ("simple", "RFC822", b"RFC822 " + lit(SIMPLE)),
    ("simple", "BODY[HEADER]", b"BODY[HEADER] " + lit(SIMPLE_HEADER)),
    ("simple", "RFC822.HEADER", b"RFC822.HEADER " + lit(SIMPLE_HEADER)),
    ("simple", "BODY[TEXT]", b"BODY[TEXT] " + lit(SIMPLE_BODY)),
    ("simple", "RFC822.TEXT", b"RFC822.TEXT " + lit(SIMPLE_BODY)),
    ("simple", "BODY[1]", b"BODY[1] " + lit(SIMPLE_BODY)),
    ("simple", "BODY[1.MIME]", b"BODY[1.MIME] " + lit(SIMPLE_HEADER)),
    ("simple", "BODY[2]", b'BODY[2] ""'),
    ("simple", "BODY[1.1]", b'BODY[1.1] ""'),
    ("simple", "BODY[1.HEADER]", b'BODY[1.HEADER] ""'),
    ("simple", "BODY[1.TEXT]", b'BODY[1.TEXT] ""'),
    (
        "simple",
        "BODY[HEADER.FIELDS (subject FROM)]",
        b"BODY[HEADER.FIELDS (subject FROM)] "
        + lit(b"From: Alice <alice@example.com>\r\nSubject: Lunch\r\n\r\n"),
    ),
    (
        "simple",
        "BODY.PEEK[HEADER.FIELDS.NOT (From To Date)]",
        b"BODY[HEADER.FIELDS.NOT (From To Date)] " + lit(b"Subject: Lunch\r\nMessage-ID: <m1@example.com>\r\n\r\n"),
    ),
    ("simple", "BODY[HEADER.FIELDS (X-Absent)]", b"BODY[HEADER.FIELDS (X-Absent)] " + lit(b"\r\n")),
    ("simple", "BODY[]<0.4>", b"BODY[]<0> " + lit(b"From")),
    ("simple", "BODY[]<150.1000>", b"BODY[]<150> " + lit(SIMPLE[150:])),
    ("simple", "BODY[TEXT]<9.3>", b"BODY[TEXT]<9> " + lit(b"See")),
    ("simple", "BODY[TEXT]<19.5>", b'BODY[TEXT]<19> ""'),
    ("simple", "BODY[TEXT]<1000.5>", b'BODY[TEXT]<1000> ""'),
    ("simple", "BODY[HEADER.FIELDS (To)]<2.3>", b"BODY[HEADER.FIELDS (To)]<2> " + lit(b": b")),
    # LF-only lines: slices stay as stored; built headers get CRLF; the mbox line is no field.
    ("lf-only", "BODY[HEADER]", b"BODY[HEADER] " + lit(LF_ONLY_HEADER)),
    ("lf-only", "BODY[TEXT]", b"BODY[TEXT] " + lit(LF_ONLY_BODY)),
    (
        "lf-only",
        "BODY[HEADER.FIELDS (SUBJECT)]",
        b"BODY[HEADER.FIELDS (SUBJECT)] " + lit(b"Subject: folded\r\n over two lines\r\n\r\n"),
    ),
    (
        "lf-only",
        "BODY[HEADER.FIELDS.NOT (subject)]",
        b"BODY[HEADER.FIELDS.NOT (subject)] " + lit(b"From: alice@example.com\r\nX-Note: x\r\n\r\n"),
    ),
    # Nested: numbering continues into the embedded message/rfc822.
    ("nested", "BODY[1]", b"BODY[1] " + lit(b"See the forwarded message.")),
    (
        "nested",
        "BODY[1.MIME]",
        b"BODY[1.MIME] " + lit(b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"),
    ),
    ("nested", "BODY[2]", b"BODY[2] " + lit(EMBEDDED)),
    ("nested", "BODY[2.MIME]", b"BODY[2.MIME] " + lit(PART2_MIME)),
    ("nested", "BODY[2.HEADER]", b"BODY[2.HEADER] " + lit(EMBEDDED_HEADER)),
    ("nested", "BODY[2.TEXT]", b"BODY[2.TEXT] " + lit(EMBEDDED_BODY)),
    (
        "nested",
        "BODY[2.HEADER.FIELDS (Subject)]",
        b"BODY[2.HEADER.FIELDS (Subject)] " + lit(b"Subject: report\r\n\r\n"),
    ),
    ("nested", "BODY[2.1]", b"BODY[2.1] " + lit(b"plain report")),
    ("nested", "BODY[2.2]", b"BODY[2.2] " + lit(b"<p>html report</p>")),
    ("nested", "BODY[2.2.MIME]", b"BODY[2.2.MIME] " + lit(b"Content-Type: text/html\r\n\r\n")),
    ("nested", "BODY[2.3]", b'BODY[2.3] ""'),
    ("nested", "BODY[2.1.1]", b'BODY[2.1.1] ""'),
    ("nested", "BODY[3]", b"BODY[3] " + lit(b"JVBERi0=")),
    ("nested", "BODY[3.MIME]", b"BODY[3.MIME] " + lit(PART3_MIME)),
    ("nested", "BODY[3.HEADER]", b'BODY[3.HEADER] ""'),
    ("nested", "BODY[4]", b'BODY[4] ""'),
    ("nested", "BODY[TEXT]", b"BODY[TEXT] " + lit(NESTED_BODY)),
    ("nested", "BODY[HEADER]", b"BODY[HEADER] " + lit(NESTED_HEADER)),
    # A base64 message/rfc822 stays closed: no HEADER inside it.
    ("encodings", "BODY[4]", b"BODY[4] " + lit(b"U3ViamVjdDogaGkNCg0KYm9keQ==")),
    ("encodings", "BODY[4.HEADER]", b'BODY[4.HEADER] ""'),
    ("encodings", "BODY[4.1]", b'BODY[4.1] ""'),
    # Without a header section, or without a body.
    ("no-header", "BODY[HEADER]", b'BODY[HEADER] ""'),
    ("no-header", "BODY[TEXT]", b"BODY[TEXT] " + lit(NO_HEADER)),
    ("no-header", "BODY[HEADER.FIELDS (Subject)]", b"BODY[HEADER.FIELDS (Subject)] " + lit(b"\r\n")),
    ("header-only", "BODY[HEADER]", b"BODY[HEADER] " + lit(HEADER_ONLY)),
    ("header-only", "BODY[TEXT]", b'BODY[TEXT] ""'),
    (
        "header-only",
        "BODY[HEADER.FIELDS (from)]",
        b"BODY[HEADER.FIELDS (from)] " + lit(b"From: a@example.com\r\n\r\n"),
    ),
]


@pytest.mark.parametrize(
    ("name", "wire", "expected"), SECTIONS, ids=[f"{n}-{w}" for n, w, _ in SECTIONS]
)
def test_body_section(name: str, wire: str, expected: bytes) -> None:
    assert fetch(name, wire) == b"* 1 FETCH (" + expected + b")\r\n"


def test_header_and_text_add_up_to_the_message() -> None:
    for name, raw in MESSAGES.items():
        header = fetch(name, "BODY[HEADER]")
        text = fetch(name, "BODY[TEXT]")
        top = PARSED[name].body
        assert raw[: top.header_end] + raw[top.body_start :] == raw, name
        assert (raw[: top.header_end] in header) and (raw[top.body_start :] in text or not raw[top.body_start :])


# -- BINARY ----------------------------------------------------------------------------------

BINARIES = [
    ("encodings", "BINARY[1]", b"BINARY[1] " + lit("Grüße, softbreak".encode())),
    ("encodings", "BINARY.PEEK[1]<3.4>", b"BINARY[1]<3> " + lit("üße".encode()[1:5])),
    ("encodings", "BINARY[2]", b"BINARY[2] ~{3}\r\na\x00b"),
    ("encodings", "BINARY[2]<2.5>", b"BINARY[2]<2> " + lit(b"b")),
    ("encodings", "BINARY[4]", b"BINARY[4] " + lit(b"Subject: hi\r\n\r\nbody")),
    ("encodings", "BINARY[9]", b'BINARY[9] ""'),
    ("nested", "BINARY[3]", b"BINARY[3] " + lit(b"%PDF-")),
    ("nested", "BINARY[2.1]", b"BINARY[2.1] " + lit(b"plain report")),
    ("nested", "BINARY[2]", b"BINARY[2] " + lit(EMBEDDED)),
    ("simple", "BINARY[]", b"BINARY[] " + lit(SIMPLE)),
    ("simple", "BINARY[1]", b"BINARY[1] " + lit(SIMPLE_BODY)),
    ("encodings", "BINARY.SIZE[1]", b"BINARY.SIZE[1] %d" % len("Grüße, softbreak".encode())),
    ("encodings", "BINARY.SIZE[2]", b"BINARY.SIZE[2] 3"),
    ("encodings", "BINARY.SIZE[4]", b"BINARY.SIZE[4] 19"),
    ("encodings", "BINARY.SIZE[7]", b"BINARY.SIZE[7] 0"),
    ("nested", "BINARY.SIZE[3]", b"BINARY.SIZE[3] 5"),
    ("nested", "BINARY.SIZE[2]", b"BINARY.SIZE[2] %d" % len(EMBEDDED)),
    ("simple", "BINARY.SIZE[]", b"BINARY.SIZE[] %d" % len(SIMPLE)),
]


@pytest.mark.parametrize(
    ("name", "wire", "expected"), BINARIES, ids=[f"{n}-{w}" for n, w, _ in BINARIES]
)
def test_binary(name: str, wire: str, expected: bytes) -> None:
    assert fetch(name, wire) == b"* 1 FETCH (" + expected + b")\r\n"


@pytest.mark.parametrize("wire", ["BINARY[3]", "BINARY.PEEK[3]<0.10>", "BINARY.SIZE[3]"])
def test_unknown_transfer_encoding_is_refused(wire: str) -> None:
    with pytest.raises(UnknownCte) as caught:
        fetch("encodings", wire)
    assert caught.value.code == "UNKNOWN-CTE"
    assert caught.value.encoding == "x-uuencode"


def test_binary_size_matches_binary() -> None:
    for name in MESSAGES:
        for path in ("", "1", "2", "3", "4", "2.1"):
            try:
                data = fetch(name, f"BINARY.PEEK[{path}]")
            except UnknownCte:
                continue
            size = int(fetch(name, f"BINARY.SIZE[{path}]").split(b" ")[-1].rstrip(b")\r\n"))
            payload = data.split(b"\r\n", 1)[1][: -len(b")\r\n")] if b"{" in data else b""
            assert size == len(payload), (name, path)
