"""The MIME tree: BODYSTRUCTURE fields, byte offsets, IMAP part numbers, malformed structure."""

from __future__ import annotations

import pytest

from relate.message import Part, parse_message
from relate.message.limits import MAX_DEPTH, MAX_PARTS


def shape(part: Part) -> str:
    """A compact picture of a tree: multipart/mixed[text/plain,message/rfc822{text/plain}]."""
    out = part.media_type
    if part.parts:
        out += "[" + ",".join(shape(p) for p in part.parts) + "]"
    if part.message is not None:
        out += "{" + shape(part.message) + "}"
    return out


def depth(part: Part) -> int:
    children = [*part.parts, *([part.message] if part.message else [])]
    return 1 + max((depth(c) for c in children), default=0)


def count(part: Part) -> int:
    return 1 + sum(count(c) for c in part.parts) + (count(part.message) if part.message else 0)


SAMPLE = b"""From: a@b
Subject: sample
Content-Type: multipart/mixed; boundary="outer"

preamble
--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=utf-8

plain body
line two
--inner
Content-Type: text/html
Content-Transfer-Encoding: Quoted-Printable

<p>html</p>
--inner--
--outer
Content-Type: message/rfc822

Subject: inner message
From: x@y
Content-Type: multipart/mixed; boundary=nested

--nested

nested text
--nested
Content-Type: image/png; name=a.png
Content-ID: <img1@x>
Content-Transfer-Encoding: base64
Content-Disposition: inline; filename="a.png"
Content-Description: A picture
Content-Language: en, de
Content-Location: http://x/a.png
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

iVBORw0KGgo=
--nested--
--outer--
epilogue
"""

# (section, header, body) with "\n" line ends; the CRLF variant replaces them.
SECTIONS = [
    (
        [],
        b'From: a@b\nSubject: sample\nContent-Type: multipart/mixed; boundary="outer"\n\n',
        SAMPLE.split(b'"outer"\n\n', 1)[1],
    ),
    (
        [1],
        b"Content-Type: multipart/alternative; boundary=inner\n\n",
        b"--inner\nContent-Type: text/plain; charset=utf-8\n\nplain body\nline two\n--inner\n"
        b"Content-Type: text/html\nContent-Transfer-Encoding: Quoted-Printable\n\n<p>html</p>\n--inner--",
    ),
    ([1, 1], b"Content-Type: text/plain; charset=utf-8\n\n", b"plain body\nline two"),
    ([1, 2], b"Content-Type: text/html\nContent-Transfer-Encoding: Quoted-Printable\n\n", b"<p>html</p>"),
    ([2], b"Content-Type: message/rfc822\n\n", SAMPLE.split(b"rfc822\n\n", 1)[1].split(b"\n--outer--")[0]),
    ([2, 1], b"\n", b"nested text"),
    ([2, 2], SAMPLE.split(b"--nested\n")[2].split(b"\n\n")[0] + b"\n\n", b"iVBORw0KGgo="),
]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize(("path", "header", "body"), SECTIONS, ids=lambda v: None)
def test_offsets_slice_raw_exactly(newline: bytes, path: list[int], header: bytes, body: bytes) -> None:
    raw = SAMPLE.replace(b"\n", newline)
    top = parse_message(raw).body
    part = top.part(path) if path else top
    assert part is not None
    assert raw[part.header_start : part.header_end] == header.replace(b"\n", newline)
    assert raw[part.body_start : part.body_end] == body.replace(b"\n", newline)
    assert part.header_end == part.body_start
    assert part.size == len(body.replace(b"\n", newline))


def test_embedded_message_offsets() -> None:
    raw = SAMPLE.replace(b"\n", b"\r\n")
    rfc822 = parse_message(raw).body.part([2])
    assert rfc822 is not None and rfc822.message is not None
    inner = rfc822.message
    assert raw[inner.header_start : inner.header_end] == (
        b"Subject: inner message\r\nFrom: x@y\r\nContent-Type: multipart/mixed; boundary=nested\r\n\r\n"
    )
    assert raw[inner.body_start : inner.body_end].startswith(b"--nested\r\n\r\nnested text")
    assert raw[inner.body_start : inner.body_end].endswith(b"--nested--")
    assert (inner.header_start, inner.body_end) == (rfc822.body_start, rfc822.body_end)


def test_sample_shape_and_envelope_of_embedded_message() -> None:
    top = parse_message(SAMPLE).body
    assert shape(top) == (
        "multipart/mixed[multipart/alternative[text/plain,text/html],"
        "message/rfc822{multipart/mixed[text/plain,image/png]}]"
    )
    rfc822 = top.part([2])
    assert rfc822 is not None
    x = [[None, None, "x", "y"]]
    assert rfc822.envelope == [None, "inner message", x, x, x, None, None, None, None, None]


def test_bodystructure_fields() -> None:
    image = parse_message(SAMPLE).body.part([2, 2])
    assert image is not None
    assert (image.type, image.subtype, image.params) == ("image", "png", [("name", "a.png")])
    assert image.id == "<img1@x>"
    assert image.description == "A picture"
    assert image.encoding == "base64"
    assert image.disposition == ("inline", [("filename", "a.png")])
    assert image.language == ["en", "de"]
    assert image.location == "http://x/a.png"
    assert image.md5 == "Q2hlY2sgSW50ZWdyaXR5IQ=="
    assert image.lines == 1


FIELDS = [
    ("no-content-type", b"\r\nbody", ("text", "plain", [("charset", "us-ascii")], "7bit")),
    (
        "no-subtype",
        b"Content-Type: text; charset=utf-8\r\n\r\n",
        ("text", "plain", [("charset", "utf-8")], "7bit"),
    ),
    (
        "invalid-type",
        b"Content-Type: multipart; boundary=x\r\n\r\n",
        ("text", "plain", [("boundary", "x"), ("charset", "us-ascii")], "7bit"),
    ),
    ("empty-type", b"Content-Type:\r\n\r\n", ("text", "plain", [("charset", "us-ascii")], "7bit")),
    (
        "duplicate-first-wins",
        b"Content-Type: text/html\r\nContent-Type: image/gif\r\n\r\n",
        ("text", "html", [], "7bit"),
    ),
    (
        "case-folded",
        b"Content-Type: TEXT/HTML; CHARSET=UTF-8\r\n\r\n",
        ("text", "html", [("charset", "UTF-8")], "7bit"),
    ),
    (
        "encoding-upper",
        b"Content-Transfer-Encoding: BASE64\r\n\r\n",
        ("text", "plain", [("charset", "us-ascii")], "base64"),
    ),
    (
        "encoding-junk",
        b"Content-Transfer-Encoding: 8bit; x\r\n\r\n",
        ("text", "plain", [("charset", "us-ascii")], "8bit"),
    ),
    (
        "encoding-unknown",
        b"Content-Transfer-Encoding: x-uuencode\r\n\r\n",
        ("text", "plain", [("charset", "us-ascii")], "x-uuencode"),
    ),
    (
        "encoding-empty",
        b"Content-Transfer-Encoding:\r\n\r\n",
        ("text", "plain", [("charset", "us-ascii")], "7bit"),
    ),
    (
        "rfc2231-boundary",
        b"Content-Type: multipart/mixed; boundary*0=a; boundary*1=b\r\n\r\n--ab\r\n\r\nx\r\n--ab--",
        ("multipart", "mixed", [("boundary", "ab")], "7bit"),
    ),
]


@pytest.mark.parametrize(("raw", "fields"), [c[1:] for c in FIELDS], ids=[c[0] for c in FIELDS])
def test_top_fields(raw: bytes, fields: tuple[str, str, list[tuple[str, str]], str]) -> None:
    top = parse_message(raw).body
    assert (top.type, top.subtype, top.params, top.encoding) == fields


def mp(body: bytes, boundary: bytes = b"b", subtype: bytes = b"mixed") -> bytes:
    return b"Content-Type: multipart/" + subtype + b'; boundary="' + boundary + b'"\r\n\r\n' + body


STRUCTURES = [
    ("single", b"Subject: x\r\n\r\nhi", "text/plain", ["hi"]),
    (
        "two-parts",
        mp(b"--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\n"),
        "multipart/mixed[text/plain,text/plain]",
        ["one", "two"],
    ),
    (
        "no-preamble-lf",
        mp(b"--b\n\none\n--b--\n").replace(b"\r\n", b"\n"),
        "multipart/mixed[text/plain]",
        ["one"],
    ),
    (
        "mixed-line-ends",
        mp(b"--b\n\none\r\n--b\r\n\ntwo\n--b--"),
        "multipart/mixed[text/plain,text/plain]",
        ["one", "two"],
    ),
    (
        "never-closed",
        mp(b"--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n"),
        "multipart/mixed[text/plain,text/plain]",
        ["one", "two\r\n"],
    ),
    ("wrong-close", mp(b"--b\r\n\r\none\r\n--c--\r\n"), "multipart/mixed[text/plain]", ["one\r\n--c--\r\n"]),
    ("no-delimiter", mp(b"just text\r\n"), "multipart/mixed[text/plain]", ["just text\r\n"]),
    ("close-only", mp(b"--b--\r\n"), "multipart/mixed[text/plain]", ["--b--\r\n"]),
    (
        "no-boundary-param",
        b"Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx",
        "multipart/mixed[text/plain]",
        ["--b\r\n\r\nx"],
    ),
    ("empty-boundary", mp(b"--\r\n\r\nx\r\n", b""), "multipart/mixed[text/plain]", ["--\r\n\r\nx\r\n"]),
    ("trailing-blanks", mp(b"--b \t\r\n\r\none\r\n--b--"), "multipart/mixed[text/plain]", ["one"]),
    ("trailing-garbage", mp(b"--bX\r\n--b\r\n\r\none\r\n--b--"), "multipart/mixed[text/plain]", ["one"]),
    (
        "close-with-garbage",
        mp(b"--b\r\n\r\none\r\n--b--junk\r\nepilogue"),
        "multipart/mixed[text/plain]",
        ["one"],
    ),
    (
        "prefix-boundary",
        mp(b"--a\r\n\r\none\r\n--ab\r\n--a--", b"a"),
        "multipart/mixed[text/plain]",
        ["one\r\n--ab"],
    ),
    ("empty-parts", mp(b"--b\r\n--b\r\n--b--"), "multipart/mixed[text/plain,text/plain]", ["", ""]),
    ("header-no-blank", mp(b"--b\r\nContent-Type: text/html\r\n--b--"), "multipart/mixed[text/html]", [""]),
    ("body-no-header", mp(b"--b\r\nhello\r\n--b--"), "multipart/mixed[text/plain]", ["hello"]),
    ("boundary-with-space", mp(b"--a b\r\n\r\nx\r\n--a b--", b"a b"), "multipart/mixed[text/plain]", ["x"]),
    (
        "boundary-specials",
        mp(b"--=_P(1)+?\r\n\r\nx\r\n--=_P(1)+?--", b"=_P(1)+?"),
        "multipart/mixed[text/plain]",
        ["x"],
    ),
    (
        "nested",
        mp(b"--b\r\n" + mp(b"--c\r\n\r\nin\r\n--c--\r\n", b"c") + b"--b\r\n\r\nout\r\n--b--"),
        "multipart/mixed[multipart/mixed[text/plain],text/plain]",
        ["in", "out"],
    ),
    (
        "inner-unclosed-cut-by-outer",
        mp(b"--b\r\n" + mp(b"--c\r\n\r\nin\r\n", b"c") + b"--b\r\n\r\nout\r\n--b--"),
        "multipart/mixed[multipart/mixed[text/plain],text/plain]",
        ["in", "out"],
    ),
    (
        "digest-defaults",
        mp(b"--b\r\n\r\nSubject: one\r\n\r\nx\r\n--b--", subtype=b"digest"),
        "multipart/digest[message/rfc822{text/plain}]",
        ["x"],
    ),
    (
        "rfc822-base64-is-leaf",
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA==",
        "message/rfc822",
        ["U3ViamVjdDogeA=="],
    ),
    (
        "message-global",
        b"Content-Type: message/global\r\n\r\nSubject: x\r\n\r\nbody",
        "message/global{text/plain}",
        ["body"],
    ),
    ("nul-bytes", mp(b"--b\r\n\r\n\x00\x00\r\n--b--"), "multipart/mixed[text/plain]", ["\x00\x00"]),
]


def leaves(raw: bytes, part: Part) -> list[str]:
    if part.parts:
        return [t for p in part.parts for t in leaves(raw, p)]
    if part.message is not None:
        return leaves(raw, part.message)
    return [raw[part.body_start : part.body_end].decode("latin-1")]


@pytest.mark.parametrize(
    ("raw", "tree", "bodies"), [c[1:] for c in STRUCTURES], ids=[c[0] for c in STRUCTURES]
)
def test_structure(raw: bytes, tree: str, bodies: list[str]) -> None:
    top = parse_message(raw).body
    assert shape(top) == tree
    assert leaves(raw, top) == bodies


def nested_multiparts(levels: int) -> bytes:
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(levels)
    )
    return head + b"\r\ninnermost\r\n"


def innermost(part: Part) -> Part:
    while part.parts:
        part = part.parts[0]
    return part


def test_deep_multipart_nesting_is_capped() -> None:
    top = parse_message(nested_multiparts(100)).body
    assert depth(top) == MAX_DEPTH + 2  # 65 multiparts, the last with an opaque child
    opaque = innermost(top)
    assert opaque.media_type == "text/plain" and opaque.header_start == opaque.header_end


def test_very_deep_nesting_stops_within_the_scan_budget() -> None:
    top = parse_message(nested_multiparts(1000)).body
    assert 8 < depth(top) <= MAX_DEPTH + 2
    assert innermost(top).header_start == innermost(top).header_end


def test_deep_message_nesting_is_capped() -> None:
    top = parse_message(b"Content-Type: message/rfc822\r\n\r\n" * 2000 + b"body").body
    assert depth(top) == MAX_DEPTH + 1


def test_part_count_is_capped() -> None:
    top = parse_message(mp(b"--b\r\n\r\nx\r\n" * 50_000 + b"--b--\r\n")).body
    assert count(top) <= MAX_PARTS + 1
    assert top.parts[-1].body_end == top.body_end  # delimiters past the cap are ignored


def test_lines() -> None:
    raw = mp(
        b"--b\r\n\r\none\r\ntwo\r\n--b\r\n\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nA: b\r\n\r\nc\r\n--b--"
    )
    top = parse_message(raw).body
    assert [p.lines for p in top.parts] == [2, 0, 3]
    assert top.lines == 0
    assert parse_message(b"\r\nno newline").body.lines == 1
    assert parse_message(b"\r\nends\r\n").body.lines == 1
    assert parse_message(b"\r\n").body.lines == 0


# -- IMAP part numbers (RFC 9051 §6.4.5) -------------------------------------------------------

NUMBERS = [
    ([1], "multipart/alternative"),
    ([1, 1], "text/plain"),
    ([1, 2], "text/html"),
    ([2], "message/rfc822"),
    ([2, 1], "text/plain"),
    ([2, 2], "image/png"),
    ([3], None),
    ([0], None),
    ([-1], None),
    ([1, 3], None),
    ([2, 3], None),
    ([1, 1, 1], None),
    ([2, 2, 1], None),
    ([], None),
]


@pytest.mark.parametrize(
    ("path", "media"), NUMBERS, ids=[".".join(map(str, p)) or "empty" for p, _ in NUMBERS]
)
def test_part_numbers_multipart(path: list[int], media: str | None) -> None:
    part = parse_message(SAMPLE).body.part(path)
    assert (part.media_type if part else None) == media


SINGLE_RFC822 = b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nbody"

SINGLE_NUMBERS = [
    ("text", b"Subject: x\r\n\r\nbody", [1], "top"),
    ("text-2", b"Subject: x\r\n\r\nbody", [2], None),
    ("text-1.1", b"Subject: x\r\n\r\nbody", [1, 1], None),
    ("rfc822-1", SINGLE_RFC822, [1], "top"),
    ("rfc822-1.1", SINGLE_RFC822, [1, 1], "embedded"),
    ("rfc822-1.2", SINGLE_RFC822, [1, 2], None),
    ("rfc822-1.1.1", SINGLE_RFC822, [1, 1, 1], None),
    ("mixed-rfc822-2.1", mp(b"--b\r\n\r\nx\r\n--b\r\n" + SINGLE_RFC822 + b"\r\n--b--"), [2, 1], "embedded"),
]


@pytest.mark.parametrize(
    ("raw", "path", "which"), [c[1:] for c in SINGLE_NUMBERS], ids=[c[0] for c in SINGLE_NUMBERS]
)
def test_part_numbers_single(raw: bytes, path: list[int], which: str | None) -> None:
    top = parse_message(raw).body
    part = top.part(path)
    if which is None:
        assert part is None
    elif which == "top":
        assert part is top
    else:
        assert part is not None and part.media_type == "text/plain"
        assert raw[part.body_start : part.body_end] == b"body"
        assert raw[part.header_start : part.header_end] == b"Subject: in\r\n\r\n"
