"""Address headers and IMAP ENVELOPE."""

from __future__ import annotations

import time

import pytest

from relate.message import parse_message
from relate.message.address import envelope_addresses, mailboxes, parse_addresses

N = None

ADDRESSES = [
    (
        "angle",
        "John Doe <john@Example.COM>",
        [["John Doe", N, "john", "Example.COM"]],
        [("John Doe", "john@example.com")],
    ),
    ("bare", "john@example.com", [[N, N, "john", "example.com"]], [("", "john@example.com")]),
    ("angle-only", "<john@example.com>", [[N, N, "john", "example.com"]], [("", "john@example.com")]),
    ("two", "a@b, c@d", [[N, N, "a", "b"], [N, N, "c", "d"]], [("", "a@b"), ("", "c@d")]),
    ("quoted-name-comma", '"Doe, John" <j@x>', [["Doe, John", N, "j", "x"]], [("Doe, John", "j@x")]),
    ("quoted-escapes", r'"a \"b\" \\c" <j@x>', [['a "b" \\c', N, "j", "x"]], [('a "b" \\c', "j@x")]),
    ("comment-as-name", "john@x (John Smith)", [["John Smith", N, "john", "x"]], [("John Smith", "john@x")]),
    (
        "comment-nested",
        "john@x (John (the) Smith)",
        [["John (the) Smith", N, "john", "x"]],
        [("John (the) Smith", "john@x")],
    ),
    ("name-beats-comment", "Jo (c) <j@x>", [["Jo", N, "j", "x"]], [("Jo", "j@x")]),
    ("comment-in-local", "jo(c)hn@x", [["c", N, "john", "x"]], [("c", "john@x")]),
    ("quoted-local", '"john doe"@x', [[N, N, '"john doe"', "x"]], [("", '"john doe"@x')]),
    ("quoted-local-plain", '"john"@x', [[N, N, "john", "x"]], [("", "john@x")]),
    ("dotted-local", "john.q.doe@x.org", [[N, N, "john.q.doe", "x.org"]], [("", "john.q.doe@x.org")]),
    (
        "dots-in-name",
        "Mr. John Q. Public <jqp@x>",
        [["Mr. John Q. Public", N, "jqp", "x"]],
        [("Mr. John Q. Public", "jqp@x")],
    ),
    (
        "encoded-name",
        "=?utf-8?q?J=C3=B6rg?= <j@x>",
        [["=?utf-8?q?J=C3=B6rg?=", N, "j", "x"]],
        [("Jörg", "j@x")],
    ),
    (
        "encoded-in-quotes",
        '"=?utf-8?q?J=C3=B6rg?=" <j@x>',
        [["=?utf-8?q?J=C3=B6rg?=", N, "j", "x"]],
        [("Jörg", "j@x")],
    ),
    (
        "utf8-rfc6532",
        "Müller <müller@Bücher.de>",
        [["Müller", N, "müller", "Bücher.de"]],
        [("Müller", "müller@bücher.de")],
    ),
    ("idn-punycode", "a@XN--BCHER-KVA.de", [[N, N, "a", "XN--BCHER-KVA.de"]], [("", "a@xn--bcher-kva.de")]),
    ("domain-literal", "a@[192.0.2.1]", [[N, N, "a", "[192.0.2.1]"]], [("", "a@[192.0.2.1]")]),
    ("source-route", "<@a.org,@b.org:u@h>", [[N, "@a.org,@b.org", "u", "h"]], [("", "u@h")]),
    (
        "group",
        'Friends: a@b, "C D" <c@d>;',
        [[N, N, "Friends", N], [N, N, "a", "b"], ["C D", N, "c", "d"], [N, N, N, N]],
        [("", "a@b"), ("C D", "c@d")],
    ),
    ("empty-group", "undisclosed-recipients:;", [[N, N, "undisclosed-recipients", N], [N, N, N, N]], []),
    ("unterminated-group", "G: a@b", [[N, N, "G", N], [N, N, "a", "b"], [N, N, N, N]], [("", "a@b")]),
    (
        "group-then-mailbox",
        "G: a@b; c@d",
        [[N, N, "G", N], [N, N, "a", "b"], [N, N, N, N], [N, N, "c", "d"]],
        [("", "a@b"), ("", "c@d")],
    ),
    ("no-angle-name", "John john@x.com", [["John", N, "john", "x.com"]], [("John", "john@x.com")]),
    ("missing-comma", "a@b c@d", [[N, N, "a", "b"], [N, N, "c", "d"]], [("", "a@b"), ("", "c@d")]),
    (
        "junk-after-angle",
        "x <a@b> junk, y <c@d>",
        [["x", N, "a", "b"], ["y", N, "c", "d"]],
        [("x", "a@b"), ("y", "c@d")],
    ),
    ("unclosed-angle", "x <a@b", [["x", N, "a", "b"]], [("x", "a@b")]),
    ("no-domain", "foo", [[N, N, "foo", ""]], [("", "foo")]),
    ("stray-commas", ",, a@b ,,", [[N, N, "a", "b"]], [("", "a@b")]),
    ("empty", "", None, []),
    ("null-path", "<>", None, []),
    ("named-null-path", "Mailer <>", [["Mailer", N, "", ""]], []),
    ("unclosed-quote", '"abc <a@b>', [[N, N, '"abc <a@b>"', ""]], [("", '"abc <a@b>"')]),
    ("unclosed-comment", "a@b (never closed", [["never closed", N, "a", "b"]], [("never closed", "a@b")]),
]


@pytest.mark.parametrize(
    ("text", "envelope", "pairs"), [c[1:] for c in ADDRESSES], ids=[c[0] for c in ADDRESSES]
)
def test_addresses(text: str, envelope: list[list[str | None]] | None, pairs: list[tuple[str, str]]) -> None:
    entries = parse_addresses(text)
    assert envelope_addresses(entries) == envelope
    assert mailboxes(entries) == pairs


@pytest.mark.parametrize(
    "text",
    [
        "<" * 50_000,
        "(" * 50_000,
        '"\\' * 30_000,
        "a@" * 30_000,
        ":" * 50_000,
        "a, " * 30_000,
        "@<>:;,." * 10_000,
    ],
    ids=["angles", "comments", "quotes", "ats", "colons", "commas", "specials"],
)
@pytest.mark.usefixtures("no_gc")
def test_hostile_address_lists_are_linear(text: str) -> None:
    started = time.process_time()
    entries = parse_addresses(text)
    assert time.process_time() - started < 1
    assert len(entries) <= 1002


def test_address_count_is_capped() -> None:
    entries = parse_addresses(", ".join(f"u{i}@x.org" for i in range(5000)))
    assert len(entries) == 1000


# -- ENVELOPE ------------------------------------------------------------------------------

FROM = [["Ann", N, "ann", "a.org"]]

ENVELOPES = [
    (
        "full",
        b"Date: Tue, 1 Jul 2003 10:52:37 +0200\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
        b"From: Ann <ann@a.org>\r\nSender: bob@b.org\r\nReply-To: r@c.org\r\nTo: t@d.org\r\n"
        b"Cc: c@e.org\r\nBcc: b@f.org\r\nIn-Reply-To: <p@x>\r\nMessage-ID: <m@x>\r\n\r\n",
        [
            "Tue, 1 Jul 2003 10:52:37 +0200",
            "=?utf-8?q?Gr=C3=BC=C3=9Fe?=",
            FROM,
            [[N, N, "bob", "b.org"]],
            [[N, N, "r", "c.org"]],
            [[N, N, "t", "d.org"]],
            [[N, N, "c", "e.org"]],
            [[N, N, "b", "f.org"]],
            "<p@x>",
            "<m@x>",
        ],
    ),
    ("sender-reply-to-default", b"From: Ann <ann@a.org>\r\n\r\n", [N, N, FROM, FROM, FROM, N, N, N, N, N]),
    (
        "empty-sender-defaults",
        b"From: Ann <ann@a.org>\r\nSender:\r\nReply-To: \r\n\r\n",
        [N, N, FROM, FROM, FROM, N, N, N, N, N],
    ),
    ("no-header", b"just a body\r\n", [N] * 10),
    ("empty-subject", b"Subject:\r\n\r\n", [N, "", N, N, N, N, N, N, N, N]),
    ("folded-raw", b"Subject: a\r\n  b\r\n\r\n", [N, "a  b", N, N, N, N, N, N, N, N]),
    (
        "group-to",
        b"To: undisclosed-recipients:;\r\n\r\n",
        [N, N, N, N, N, [[N, N, "undisclosed-recipients", N], [N, N, N, N]], N, N, N, N],
    ),
    ("first-field-wins", b"Subject: one\r\nSubject: two\r\n\r\n", [N, "one", N, N, N, N, N, N, N, N]),
    ("lf-only", b"Subject: s\nTo: a@b\n\nbody", [N, "s", N, N, N, [[N, N, "a", "b"]], N, N, N, N]),
]


@pytest.mark.parametrize(("raw", "envelope"), [c[1:] for c in ENVELOPES], ids=[c[0] for c in ENVELOPES])
def test_envelope(raw: bytes, envelope: list[object]) -> None:
    assert parse_message(raw).envelope == envelope


def test_message_address_fields() -> None:
    raw = (
        b"From: =?utf-8?q?J=C3=B6rg?= <Joerg@Example.COM>, second@x.org\r\n"
        b"To: A <a@B.com>, G: c@d, e@f;\r\nCc: cc@x\r\nBcc: bcc@x\r\nReply-To: r@x\r\n\r\n"
    )
    parsed = parse_message(raw)
    assert (parsed.from_addr, parsed.from_display) == ("Joerg@example.com", "Jörg")
    assert parsed.to == [("A", "a@b.com"), ("", "c@d"), ("", "e@f")]
    assert parsed.cc == [("", "cc@x")]
    assert parsed.bcc == [("", "bcc@x")]
    assert parsed.reply_to == [("", "r@x")]


def test_missing_from() -> None:
    parsed = parse_message(b"Subject: x\r\n\r\nbody")
    assert (parsed.from_addr, parsed.from_display) == ("", "")
    assert parsed.envelope[2] is None
