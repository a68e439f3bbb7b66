"""Decoded part text, preview, search text, HTML stripping, attachments."""

from __future__ import annotations

import re
import time

import pytest

from relate.message import decode_part_body, parse_message, part_text
from relate.message.htmltext import html_to_text
from relate.message.limits import PREVIEW_CHARS, TEXT_BYTES
from relate.message.text import collapse


def mp(*parts: bytes, subtype: bytes = b"mixed", boundary: bytes = b"b") -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
    return (
        b"Content-Type: multipart/"
        + subtype
        + b"; boundary="
        + boundary
        + b"\r\n\r\n"
        + body
        + b"--"
        + boundary
        + b"--\r\n"
    )


PLAIN = b"Content-Type: text/plain; charset=utf-8\r\n\r\nPlain words"
HTML = b"Content-Type: text/html\r\n\r\n<html><head><style>p{}</style></head><body><p>Html&amp;words</p></body></html>"
IMAGE = (
    b"Content-Type: image/png\r\nContent-ID: <img@x>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo="
)
PDF = b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="a.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK'

# -- preview and search text ----------------------------------------------------------------

PREVIEWS = [
    ("plain", b"Subject: x\r\n\r\nHello   there,\r\n\r\n  friend.", "Hello there, friend."),
    ("no-header", b"Just a body\r\nwith lines", "Just a body with lines"),
    ("alternative-prefers-plain", mp(PLAIN, HTML, subtype=b"alternative"), "Plain words"),
    ("alternative-html-first-still-plain", mp(HTML, PLAIN, subtype=b"alternative"), "Plain words"),
    ("alternative-html-only", mp(HTML, subtype=b"alternative"), "Html&words"),
    (
        "alternative-empty-plain",
        mp(b"Content-Type: text/plain\r\n\r\n  \r\n", HTML, subtype=b"alternative"),
        "Html&words",
    ),
    ("html-only", HTML, "Html&words"),
    ("related-html", mp(HTML, IMAGE, subtype=b"related"), "Html&words"),
    ("mixed-with-attachment", mp(PLAIN, PDF), "Plain words"),
    ("attachment-only", mp(PDF), ""),
    (
        "qp-utf8",
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Gr=C3=BC=C3=9Fe, soft=\r\n break",
        "Grüße, soft break",
    ),
    (
        "base64-latin1",
        b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\nR3L832U=",
        "Grüße",
    ),
    ("unknown-charset-utf8", "Content-Type: text/plain; charset=x-klingon\r\n\r\nnaïve".encode(), "naïve"),
    ("undeclared-8bit-cp1252", b"\r\n\x93smart\x94", "\u201csmart\u201d"),
    ("html-meta-charset", b'Content-Type: text/html\r\n\r\n<meta charset="iso-8859-7">\xe1', "\u03b1"),
    ("embedded-not-previewed", mp(PDF, b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\ninner"), ""),
    (
        "text-attachment-skipped",
        mp(b"Content-Type: text/plain; name=notes.txt\r\n\r\nnotes", PLAIN),
        "Plain words",
    ),
    ("calendar-not-text", mp(b"Content-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR", PLAIN), "Plain words"),
    ("nul-bytes", b"\r\na\x00b", "ab"),
]


@pytest.mark.parametrize(("raw", "preview"), [c[1:] for c in PREVIEWS], ids=[c[0] for c in PREVIEWS])
def test_preview(raw: bytes, preview: str) -> None:
    assert parse_message(raw).preview == preview


def test_preview_is_capped() -> None:
    preview = parse_message(b"\r\n" + b"word " * 1000).preview
    assert len(preview) <= PREVIEW_CHARS
    assert preview.startswith("word word")


def test_search_text_joins_body_parts_and_embedded_messages() -> None:
    raw = mp(
        mp(PLAIN, HTML, subtype=b"alternative", boundary=b"alt"),
        PDF,
        b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\ninner text",
    )
    parsed = parse_message(raw)
    assert parsed.text == "Plain words inner text"
    assert parsed.preview == "Plain words"


def test_search_text_strips_html_and_is_capped() -> None:
    raw = b"Content-Type: text/html\r\n\r\n" + b"<p>caf\xc3\xa9</p>" * 200_000
    text = parse_message(raw).text
    assert "<p>" not in text and text.startswith("café café")
    assert len(text.encode()) <= TEXT_BYTES


# -- HTML ---------------------------------------------------------------------------------

HTMLS = [
    ("tags", "<b>bold</b> <i>it</i>", "bold it"),
    ("entities", "a &amp; b &lt;c&gt; &#233; &eacute;", "a & b <c> é é"),
    ("script-style-title", "<title>T</title><style>x{}</style><script>alert(1)</script>text", "text"),
    ("uppercase", "<SCRIPT>x</SCRIPT><P>y</P>", "\ny\n"),
    ("comment", "a<!-- hidden -->b", "ab"),
    ("unclosed-comment", "a<!-- hidden", "a"),
    ("unclosed-style-drops-rest", "a<style>b", "a"),
    ("unclosed-tag-drops-rest", "a<b c", "a"),
    ("less-than-text", "1 < 2", "1 < 2"),
    ("breaks", "a<br>b<p>c</p>d", "a\nb\nc\nd"),
    ("cells", "<td>a</td><td>b</td>", " a  b "),
    ("doctype", "<!DOCTYPE html><?xml x?>a", "a"),
]


@pytest.mark.parametrize(("source", "text"), [c[1:] for c in HTMLS], ids=[c[0] for c in HTMLS])
def test_html_to_text(source: str, text: str) -> None:
    assert html_to_text(source) == text


@pytest.mark.parametrize(
    "source",
    [
        "<style>" * 300_000,
        "<style " * 300_000,
        "<a" * 1_000_000,
        "<!--" * 500_000,
        "<" * 2_000_000,
        "<a>&amp;" * 250_000,
    ],
    ids=["open-styles", "unclosed-styles", "unclosed-tags", "comments", "less-thans", "tags-and-entities"],
)
@pytest.mark.usefixtures("no_gc")
def test_hostile_html_is_linear(source: str) -> None:
    started = time.process_time()
    html_to_text(source)
    assert time.process_time() - started < 1


# -- part bodies -----------------------------------------------------------------------------

BODIES = [
    ("base64", b"Content-Transfer-Encoding: base64\r\n\r\nSGVs\r\nbG8=\r\n", b"Hello"),
    ("base64-garbage", b"Content-Transfer-Encoding: base64\r\n\r\nSGVs!!\r\nbG8\r\n", b"Hello"),
    ("qp", b"Content-Transfer-Encoding: quoted-printable\r\n\r\na=3Db=\r\nc", b"a=bc"),
    ("qp-lf", b"Content-Transfer-Encoding: quoted-printable\n\na=3Db=\nc", b"a=bc"),
    ("identity", b"Content-Transfer-Encoding: 8bit\r\n\r\n\xff\xfe", b"\xff\xfe"),
    ("unknown-passes-through", b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644", b"begin 644"),
]


@pytest.mark.parametrize(("raw", "body"), [c[1:] for c in BODIES], ids=[c[0] for c in BODIES])
def test_decode_part_body(raw: bytes, body: bytes) -> None:
    assert decode_part_body(raw, parse_message(raw).body) == body


def test_part_text_keeps_html_and_decodes_charset() -> None:
    raw = mp(b"Content-Type: text/html; charset=windows-1251\r\n\r\n<p>\xcf\xf0\xe8\xe2\xe5\xf2</p>")
    parsed = parse_message(raw)
    part = parsed.body.part([1])
    assert part is not None
    assert part_text(raw, part) == "<p>Привет</p>"
    assert parsed.preview == "Привет"


# -- attachments -----------------------------------------------------------------------------


def attachment(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "part": "2",
        "filename": "",
        "contentType": "application/octet-stream",
        "size": 0,
        "contentId": None,
        "inline": False,
    }
    return {**base, **fields}


ATTACHMENTS = [
    ("none", PLAIN, [], False),
    ("pdf", mp(PLAIN, PDF), [attachment(filename="a.pdf", contentType="application/pdf", size=9)], True),
    (
        "inline-image-related",
        mp(HTML, IMAGE, subtype=b"related"),
        [attachment(contentType="image/png", size=8, contentId="img@x", inline=True)],
        False,
    ),
    (
        "image-in-mixed-not-inline",
        mp(PLAIN, IMAGE),
        [attachment(contentType="image/png", size=8, contentId="img@x")],
        True,
    ),
    (
        "name-without-disposition",
        mp(PLAIN, b'Content-Type: application/zip; name="x.zip"\r\n\r\nPK'),
        [attachment(filename="x.zip", contentType="application/zip", size=2)],
        True,
    ),
    (
        "rfc2231-filename",
        mp(
            PLAIN,
            b"Content-Type: application/pdf\r\nContent-Disposition: attachment;\r\n filename*0*=utf-8''R%C3%A9;\r\n filename*1*=sum%C3%A9.pdf\r\n\r\n%PDF",
        ),
        [attachment(filename="Résumé.pdf", contentType="application/pdf", size=4)],
        True,
    ),
    (
        "encoded-word-filename",
        mp(PLAIN, b'Content-Type: application/pdf; name="=?utf-8?q?caf=C3=A9.pdf?="\r\n\r\n%PDF'),
        [attachment(filename="café.pdf", contentType="application/pdf", size=4)],
        True,
    ),
    (
        "path-stripped",
        mp(
            PLAIN,
            b'Content-Type: text/plain\r\nContent-Disposition: attachment; filename="..\\\\..\\\\evil\x01.txt"\r\n\r\nx',
        ),
        [attachment(filename="evil.txt", contentType="text/plain", size=1)],
        True,
    ),
    (
        "forwarded-message",
        mp(PLAIN, b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\ninner"),
        [attachment(contentType="message/rfc822", size=20)],
        True,
    ),
    (
        "nested-numbering",
        mp(mp(HTML, IMAGE, subtype=b"related", boundary=b"r"), PDF),
        [
            attachment(part="1.2", contentType="image/png", size=8, contentId="img@x", inline=True),
            attachment(filename="a.pdf", contentType="application/pdf", size=9),
        ],
        True,
    ),
    (
        "single-part-attachment",
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK",
        [attachment(part="1", contentType="application/pdf", size=9)],
        True,
    ),
    (
        "qp-size",
        mp(
            PLAIN,
            b"Content-Type: application/x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3Db=\r\nc",
        ),
        [attachment(contentType="application/x", size=4)],
        True,
    ),
]


@pytest.mark.parametrize(
    ("raw", "found", "has"), [c[1:] for c in ATTACHMENTS], ids=[c[0] for c in ATTACHMENTS]
)
def test_attachments(raw: bytes, found: list[dict[str, object]], has: bool) -> None:
    parsed = parse_message(raw)
    assert parsed.attachments == found
    assert parsed.has_attachments is has


@pytest.mark.parametrize(
    "text",
    ["", "   ", "a", " a  b\tc\r\n", "\u00a0nbsp\u00a0", "file\x1cgroup\x1frecord", "line\u2028para\u2029",
     "ideographic\u3000space", "vertical\x0bform\x0cfeed", "zero\u200bwidth is not space", "\x85next line"],
    ids=["empty", "blank", "word", "ascii", "nbsp", "separators", "unicode-lines", "ideographic", "vt-ff",
         "zero-width", "nel"],
)
def test_collapse_is_the_regular_expression_it_replaces(text: str) -> None:
    assert collapse(text) == re.sub(r"\s+", " ", text).strip()
