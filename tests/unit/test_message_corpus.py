"""A corpus of real-shaped and hostile messages: parse_message never raises, stays fast and
small, and every result keeps the package's invariants."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from relate.message import ParsedMessage, Part, parse_message
from relate.message.limits import PREVIEW_CHARS, TEXT_BYTES
from relate.message.parse import parse_unguarded

CORPUS = Path(__file__).parent / "corpus"


def mp(body: bytes, boundary: bytes = b"b", subtype: bytes = b"mixed") -> bytes:
    return b"Content-Type: multipart/" + subtype + b'; boundary="' + boundary + b'"\r\n\r\n' + body


def nested(levels: int) -> bytes:
    return b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(levels)
    )


def noise(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


# Each builder makes one hostile message; builders keep module import cheap.
NASTY: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "only-crlfs": lambda: b"\r\n" * 100_000,
    "only-lfs": lambda: b"\n" * 100_000,
    "only-crs": lambda: b"\r" * 100_000,
    "nul-bytes": lambda: b"\x00" * 100_000,
    "nul-in-headers": lambda: b"Subject: a\x00b\r\nFrom: \x00<a@b\x00>\r\nX\x00: y\r\n\r\nbody\x00",
    "headers-without-body": lambda: b"Subject: x\r\nFrom: a@b\r\n",
    "body-without-headers": lambda: b"Hello\r\nworld\r\n\r\nsecond paragraph\r\n",
    "no-blank-line": lambda: b"Subject: x\r\nThis line is not a header\r\nnor this one\r\n",
    "bare-cr": lambda: b"Subject: x\rFrom: y\r\rbody\r" + mp(b"--b\r\r\rx\r--b--"),
    "lf-only-multipart": lambda: mp(
        b"--b\n\npart one\n--b\nContent-Type: text/html\n\n<b>two</b>\n--b--\n"
    ).replace(b"\r\n", b"\n"),
    "mixed-line-endings": lambda: b"Subject: x\nFrom: a@b\r\n" + mp(b"--b\n\none\r\n--b\r\n\ntwo\n--b--\r\n"),
    "latin1-headers": lambda: (
        'From: Müller <müller@bücher.de>\r\nSubject: Grüße\r\nTo: "Ærø" <a@b>\r\n\r\nbody'.encode("latin-1")
    ),
    "utf8-headers": lambda: (
        "From: Jörg <jörg@bücher.de>\r\nSubject: 日本語の件名\r\nTo: Ωμέγα <ω@παράδειγμα.δοκιμή>\r\n\r\nbody".encode()
    ),
    "encoded-word-abuse": lambda: (
        b"Subject: =?utf-8?b?!!!invalid!!!?= =?x-unknown?q?=FF=FE?= =?utf-8?q?=?utf-8?q?nested?=?=\r\n"
        b"From: =?utf-8?b?"
        + b"A" * 10_000
        + b"?= <a@b>\r\nTo: "
        + b"=?utf-8?q?x?=" * 5000
        + b" <c@d>\r\n\r\n"
    ),
    "thousands-of-encoded-words": lambda: (
        b"Subject: " + b" ".join([b"=?utf-8?b?w6k=?="] * 50_000) + b"\r\n\r\n"
    ),
    "huge-folded-header": lambda: b"Subject: " + b"\r\n ".join([b"y" * 70] * 15_000) + b"\r\n\r\nbody",
    "hundred-thousand-headers": lambda: b"".join(b"X-H%d: v\r\n" % i for i in range(100_000)) + b"\r\nbody",
    "deep-multipart": lambda: nested(1000) + b"\r\ninnermost\r\n",
    "deep-message-rfc822": lambda: (
        b"Content-Type: message/rfc822\r\n\r\n" * 2000 + b"Subject: bottom\r\n\r\nbody"
    ),
    "missing-boundary-param": lambda: b"Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx\r\n--b--",
    "boundary-never-used": lambda: mp(b"no delimiters at all\r\n" * 100),
    "boundary-never-closed": lambda: mp(b"--b\r\n\r\none\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>two"),
    "mismatched-boundaries": lambda: mp(b"--b\r\n" + mp(b"--c\r\n\r\nx\r\n--b--\r\n--c--", b"c")),
    "boundary-prefix-spam": lambda: mp(b"\r\n--bX" * 200_000, b"b"),
    "duplicate-content-type": lambda: (
        b"Content-Type: text/html\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n<p>x"
    ),
    "content-type-without-subtype": lambda: (
        b"Content-Type: multipart; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--"
    ),
    "quoted-params-escapes": lambda: (
        b'Content-Type: text/plain; charset="utf\\-8"; name="a\\"b\\\\c"; x="unterminated\r\n\r\nbody'
    ),
    "rfc2231-params": lambda: (
        b"Content-Type: application/pdf; name*0*=utf-8''%E2%82%AC; name*1=\" x\"; name*99999=junk;"
        b" name*=bad'''%ZZ\r\nContent-Disposition: attachment; filename*=x-unknown''%FF\r\n\r\n%PDF"
    ),
    "garbage-dates": lambda: b"Date: 99 Foo 20x3 25:61:61 +9999\r\nDate: Tue, 1 Jul 2003\r\n\r\n",
    "group-addresses": lambda: b'To: A Group: a@b, "c d" <c@d>;, Empty:;, Unclosed: e@f\r\nCc: :;\r\n\r\n',
    "comments-and-quoted-locals": lambda: (
        b'From: "john \\"q\\" doe"@x (J (nested) D), (only comment), <"a b"@c>\r\n\r\n'
    ),
    "missing-from": lambda: b"To: a@b\r\nSubject: no sender\r\n\r\nbody",
    "hostile-addresses": lambda: (
        b"To: " + b"<" * 20_000 + b"(" * 20_000 + b'"' + b"\\" * 20_000 + b"\r\n\r\n"
    ),
    "base64-garbage": lambda: (
        b"Content-Transfer-Encoding: base64\r\n\r\n" + noise(50_000, 1).replace(b"\r", b"")
    ),
    "qp-soft-breaks": lambda: (
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + b"=\r\n" * 10_000 + b"=ZZ=\n=4"
    ),
    "attachment-by-name": lambda: mp(
        b"--b\r\n\r\nbody\r\n--b\r\nContent-Type: application/zip; name=x.zip\r\n\r\nPK\r\n--b--"
    ),
    "inline-image-related": lambda: mp(
        b"--r\r\nContent-Type: text/html\r\n\r\n<img src=cid:i@x>\r\n--r\r\nContent-Type: image/gif\r\n"
        b"Content-ID: <i@x>\r\nContent-Transfer-Encoding: base64\r\n\r\nR0lGODlh\r\n--r--",
        b"r",
        b"related",
    ),
    "alternative-html-only": lambda: mp(
        b"--a\r\nContent-Type: text/html\r\n\r\n<p>only html</p>\r\n--a--", b"a", b"alternative"
    ),
    "unknown-and-refused-charsets": lambda: mp(
        b"--b\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\n\xff\xfe\r\n--b\r\nContent-Type: text/plain; charset=punycode\r\n\r\n"
        b"abc-\r\n--b\r\nContent-Type: text/plain; charset=zlib\r\n\r\nx\r\n--b\r\nContent-Type: text/html; charset=utf-7\r\n\r\n+2D3-\r\n--b--"
    ),
    "fifty-thousand-parts": lambda: mp(b"--b\r\n\r\nx\r\n" * 50_000 + b"--b--\r\n"),
    "long-line-no-newline": lambda: b"Subject: x\r\n\r\n" + b"a" * 3_000_000,
    "random-bytes": lambda: noise(1_000_000, 2),
    "random-bytes-after-header": lambda: (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + noise(500_000, 3)
    ),
    "garbage-header-names": lambda: b":::\r\n\xff\xfe: x\r\nA B: c\r\n\x00: d\r\nSubject: ok\r\n\r\n",
    "html-bomb": lambda: (
        b"Content-Type: text/html\r\n\r\n" + b"<style>" * 50_000 + b"<a>&amp;" * 100_000 + b"<!--"
    ),
    "rfc822-base64": lambda: (
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA0KDQpib2R5"
    ),
    "digest-with-garbage": lambda: mp(b"--d\r\n\r\nnot a message\r\n--d\r\n\r\n\r\n--d--", b"d", b"digest"),
    "utf7-subject-surrogates": lambda: b"Subject: =?utf-7?q?+2D3YPQ-?= =?utf-16?b?2D0=?=\r\n\r\n",
    "mbox-from-line": lambda: b"From alice@example.org Mon Jun  3 09:15:02 2024\r\nSubject: x\r\n\r\nbody",
    "whitespace-continuations": lambda: b"Subject: a\r\n \r\n\t\r\n  b\r\n\r\n",
    "references-flood": lambda: (
        b"References: " + b" ".join(b"<r%d@x>" % i for i in range(20_000)) + b"\r\n\r\n"
    ),
    "giant-boundary": lambda: mp(b"--" + b"x" * 5000 + b"\r\n\r\nx", b"x" * 5000),
}


def clean(value: object) -> bool:
    return isinstance(value, str) and "\x00" not in value and value.encode("utf-8") is not None


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings(v)


def shape(part: Part) -> str:
    out = part.media_type
    if part.parts:
        out += "[" + ",".join(shape(p) for p in part.parts) + "]"
    if part.message is not None:
        out += "{" + shape(part.message) + "}"
    return out


def check_part(part: Part, raw: bytes, lo: int, hi: int) -> None:
    assert lo <= part.header_start <= part.header_end == part.body_start <= part.body_end <= hi
    assert (
        part.type == part.type.lower() and part.subtype == part.subtype.lower() and part.type and part.subtype
    )
    assert part.encoding == part.encoding.lower()
    assert (part.type == "multipart") == bool(part.parts)
    assert (part.message is not None) == (part.envelope is not None)
    if not part.parts:
        body = raw[part.body_start : part.body_end]
        assert part.lines == body.count(b"\n") + (not body.endswith(b"\n") and bool(body))
    if part.message is not None:
        assert part.message.header_start == part.body_start and part.message.body_end == part.body_end
        check_part(part.message, raw, part.body_start, part.body_end)
    previous = part.body_start
    for child in part.parts:
        assert child.header_start >= previous
        check_part(child, raw, part.body_start, part.body_end)
        previous = child.body_end


def check(raw: bytes, parsed: ParsedMessage) -> None:
    assert parsed.size == len(raw)
    check_part(parsed.body, raw, 0, len(raw))
    assert (parsed.body.header_start, parsed.body.body_end) == (0, len(raw))
    data = parsed.to_json()
    assert all(clean(s) for s in strings(data))
    text = json.dumps(data, ensure_ascii=False)
    assert ParsedMessage.from_json(json.loads(text)) == parsed
    assert re.fullmatch(r"[0-9a-f]{16}", parsed.thread_id)
    assert parsed.date is None or parsed.date.utcoffset() == dt.timedelta(0)
    assert len(parsed.preview) <= PREVIEW_CHARS
    assert len(parsed.text.encode()) <= TEXT_BYTES
    assert len(parsed.envelope) == 10


@pytest.mark.parametrize("name", list(NASTY))
@pytest.mark.usefixtures("no_gc")
def test_nasty_message(name: str) -> None:
    raw = NASTY[name]()
    started = time.process_time()
    parsed = parse_unguarded(raw)  # without the safety net: a raise here is a bug
    elapsed = time.process_time() - started
    assert elapsed < 1, f"{name} took {elapsed:.2f}s"
    check(raw, parsed)


def test_corpus_is_big_enough() -> None:
    assert len(NASTY) >= 30


@pytest.mark.parametrize("seed", range(200))
def test_mutated_messages(seed: int) -> None:
    """Flip, drop, duplicate and cut bytes of real messages."""
    rng = random.Random(seed)
    files = sorted(CORPUS.glob("*.eml"))
    data = bytearray(files[seed % len(files)].read_bytes())
    for _ in range(rng.randint(1, 20)):
        i = rng.randrange(len(data))
        op = rng.randrange(4)
        if op == 0:
            data[i] = rng.randrange(256)
        elif op == 1:
            del data[i : i + rng.randint(1, 50)]
        elif op == 2:
            data[i:i] = data[i : i + rng.randint(1, 200)]
        else:
            data[i:i] = rng.choice(
                [b"\r\n", b"\n", b"--", b"=?", b"<", b'"', b"(", b":", b";", b"\x00", b"\xff"]
            )
        if not data:
            break
    raw = bytes(data)
    check(raw, parse_unguarded(raw))


def test_memory_stays_bounded() -> None:
    raws = [
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b"QUJD" * 2_500_000,
        nested(1000) + b"x" * 5_000_000,
        NASTY["boundary-prefix-spam"](),
    ]
    for raw in raws:
        tracemalloc.start()
        try:
            parse_unguarded(raw)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 * len(raw) + (16 << 20), f"peak {peak} for {len(raw)} octets"


def test_parse_message_never_raises_on_any_bytes_like() -> None:
    raw = (CORPUS / "webmail-alternative.eml").read_bytes()
    assert parse_message(bytearray(raw)) == parse_message(raw)
    assert parse_message(memoryview(raw)) == parse_message(raw)


def test_safety_net_returns_an_opaque_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import relate.message.parse as parse

    def broken(raw: bytes) -> ParsedMessage:
        raise RuntimeError("bug")

    monkeypatch.setattr(parse, "parse_unguarded", broken)
    parsed = parse.parse_message(b"Subject: x\r\n\r\nbody\r\n")
    check(b"Subject: x\r\n\r\nbody\r\n", parsed)
    assert (parsed.body.media_type, parsed.body.lines, parsed.subject) == ("text/plain", 3, "")


# -- real-shaped messages --------------------------------------------------------------------

REAL = [
    (
        "webmail-alternative.eml",
        "multipart/alternative[text/plain,text/html]",
        "Café meeting on Thursday",
        ("alice@example.org", "Alice Müller"),
        "Hi Bob, shall we meet at the café on Thursday? It is a long line that gets wrapped by the quoted-printable encoder. Alice",
        [],
    ),
    (
        "outlook-related-invoice.eml",
        "multipart/mixed[multipart/related[multipart/alternative[text/plain,text/html],image/png],application/pdf]",
        "Your invoice",
        ("support@shop.example", "Support Desk"),
        "Dear customer, your invoice is attached.",
        [("1.2", "logo.png", True), ("2", "invoice-42.pdf", False)],
    ),
    (
        "apple-lf-inline-photo.eml",
        "multipart/mixed[text/plain,image/jpeg]",
        "Photos from the trip",
        ("dave@example.com", "Dave"),
        "Here they are.",
        [("2", "IMG_0001.jpeg", False)],
    ),
    (
        "list-digest.eml",
        "multipart/mixed[text/plain,multipart/digest[message/rfc822{text/plain},message/rfc822{text/plain}]]",
        "Example-L Digest, Vol 12, Issue 3",
        ("list-bounces@lists.example.org", ""),
        "Today's topics: 1. Hello",
        [("2.1", "", False), ("2.2", "", False)],
    ),
    (
        "signed-forward.eml",
        "multipart/signed[multipart/mixed[text/plain,message/rfc822{text/plain}],application/pgp-signature]",
        "Fwd: Original",
        ("heidi@example.com", "Heidi"),
        "See below.",
        [("1.2", "Original.eml", False), ("2", "signature.asc", False)],
    ),
]


@pytest.mark.parametrize(
    ("name", "tree", "subject", "sender", "preview", "found"),
    REAL,
    ids=[r[0].removesuffix(".eml") for r in REAL],
)
def test_real_shaped_messages(
    name: str,
    tree: str,
    subject: str,
    sender: tuple[str, str],
    preview: str,
    found: list[tuple[str, str, bool]],
) -> None:
    raw = (CORPUS / name).read_bytes()
    parsed = parse_unguarded(raw)
    check(raw, parsed)
    assert shape(parsed.body) == tree
    assert parsed.subject == subject
    assert (parsed.from_addr, parsed.from_display) == sender
    assert parsed.preview == preview
    assert [(a["part"], a["filename"], a["inline"]) for a in parsed.attachments] == found


def test_json_shape() -> None:
    raw = (CORPUS / "outlook-related-invoice.eml").read_bytes()
    data = json.loads(json.dumps(parse_message(raw).to_json()))
    assert data["v"] == 1
    assert data["date"] == "2024-06-04T13:00:00+00:00"
    assert data["from"] == "support@shop.example" and data["fromDisplay"] == "Support Desk"
    assert data["to"] == [["", "customer@example.com"]]
    assert data["hasAttachments"] is True
    assert data["body"]["t"] == "multipart" and data["body"]["o"][0] == 0
    assert ParsedMessage.from_json(data).body.part([2]) is not None
