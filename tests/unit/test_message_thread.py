"""Message-ids, thread ids, dates, subjects."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from relate.message import parse_message
from relate.message.dates import parse_date
from relate.message.ids import message_ids, references

IDS = [
    ("bracketed", "<a@b>", ["a@b"]),
    ("several", "<a@b> <c@d>\r\n <e@f>", ["a@b", "c@d", "e@f"]),
    ("folded-inside", "<a@\r\n b>", ["a@b"]),
    ("prose-around", 'Your message of "Mon" <a@b>', ["a@b"]),
    ("bare", "a@b", ["a@b"]),
    ("garbage", "garbage", []),
    ("empty-brackets", "<>", []),
    ("unbalanced", "<a@b", []),
    ("empty", "", []),
]


@pytest.mark.parametrize(("value", "ids"), [c[1:] for c in IDS], ids=[c[0] for c in IDS])
def test_message_ids(value: str, ids: list[str]) -> None:
    assert message_ids(value) == ids


def test_references_keep_root_and_recent() -> None:
    refs = references(" ".join(f"<r{i}@x>" for i in range(500)))
    assert len(refs) == 100
    assert refs[0] == "r0@x" and refs[1] == "r401@x" and refs[-1] == "r499@x"


def hdr(**fields: str) -> bytes:
    return b"".join(f"{k.replace('_', '-')}: {v}\r\n".encode() for k, v in fields.items()) + b"\r\nbody"


THREADS = [
    # (id, raw, the raw whose thread it must share, or None for "a thread of its own")
    (
        "references-root",
        hdr(Message_ID="<c@x>", References="<root@x> <b@x>", In_Reply_To="<b@x>"),
        hdr(Message_ID="<root@x>"),
    ),
    (
        "in-reply-to-when-no-references",
        hdr(Message_ID="<c@x>", In_Reply_To="<root@x>"),
        hdr(Message_ID="<root@x>"),
    ),
    ("own-id-is-root", hdr(Message_ID="<root@x>", Subject="one"), hdr(Message_ID="<root@x>", Subject="two")),
    (
        "deep-reply",
        hdr(Message_ID="<z@x>", References="<root@x> <a@x> <b@x> <c@x>"),
        hdr(Message_ID="<a@x>", References="<root@x>"),
    ),
    ("no-ids-subject-ignored", hdr(From="a@b", Subject="one"), hdr(From="a@b", Subject="two")),
]


@pytest.mark.parametrize(("raw", "same_as"), [c[1:] for c in THREADS], ids=[c[0] for c in THREADS])
def test_thread_id_shared(raw: bytes, same_as: bytes) -> None:
    assert parse_message(raw).thread_id == parse_message(same_as).thread_id


def test_thread_ids_differ_between_threads_and_look_right() -> None:
    ids = {
        parse_message(raw).thread_id
        for raw in (
            hdr(Message_ID="<a@x>"),
            hdr(Message_ID="<b@x>"),
            hdr(From="a@b"),
            hdr(From="c@d"),
            b"",
            b"x",
        )
    }
    assert len(ids) == 6
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)


def test_message_id_fields() -> None:
    parsed = parse_message(hdr(Message_ID="<m@x>", In_Reply_To="<p@x>", References="<r@x> <p@x>"))
    assert (parsed.message_id, parsed.in_reply_to, parsed.references) == ("m@x", ["p@x"], ["r@x", "p@x"])
    assert parse_message(hdr(Message_ID="garbage")).message_id is None
    assert parse_message(b"\r\nbody").message_id is None


UTC = dt.UTC

DATES = [
    ("rfc5322", "Tue, 1 Jul 2003 10:52:37 +0200", dt.datetime(2003, 7, 1, 8, 52, 37, tzinfo=UTC)),
    ("no-weekday", "1 Jul 2003 10:52:37 -0000", dt.datetime(2003, 7, 1, 10, 52, 37, tzinfo=UTC)),
    ("obsolete-zone", "Tue, 1 Jul 2003 10:52:37 EST", dt.datetime(2003, 7, 1, 15, 52, 37, tzinfo=UTC)),
    ("two-digit-year", "1 Jul 03 10:52 GMT", dt.datetime(2003, 7, 1, 10, 52, tzinfo=UTC)),
    ("no-zone", "1 Jul 2003 10:52:37", dt.datetime(2003, 7, 1, 10, 52, 37, tzinfo=UTC)),
    ("comment", "Tue, 1 Jul 2003 10:52:37 +0000 (UTC)", dt.datetime(2003, 7, 1, 10, 52, 37, tzinfo=UTC)),
    ("folded", "Tue, 1 Jul 2003\r\n 10:52:37 +0000", dt.datetime(2003, 7, 1, 10, 52, 37, tzinfo=UTC)),
    ("iso8601", "2024-02-29T12:00:00+01:00", dt.datetime(2024, 2, 29, 11, tzinfo=UTC)),
    ("garbage", "yesterday", None),
    ("empty", "", None),
    ("bad-day", "31 Feb 2003 10:00:00 +0000", None),
    ("huge-year", "1 Jan 99999999 10:00:00 +0000", None),
    ("huge-offset", "1 Jan 2003 10:00:00 +9999", None),
    ("only-numbers", "1 2 3 4 5", None),
]


@pytest.mark.parametrize(("value", "when"), [c[1:] for c in DATES], ids=[c[0] for c in DATES])
def test_parse_date(value: str, when: dt.datetime | None) -> None:
    assert parse_date(value) == when


def test_date_is_utc() -> None:
    when = parse_message(hdr(Date="Tue, 1 Jul 2003 10:52:37 +0200")).date
    assert when is not None and when.utcoffset() == dt.timedelta(0)


SUBJECTS = [
    ("plain", b"Subject: Hello\r\n\r\n", "Hello"),
    ("encoded", b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n", "Grüße"),
    ("folded-encoded", b"Subject: =?utf-8?b?SGVsbG8g?=\r\n =?utf-8?b?V29ybGQ=?=\r\n\r\n", "Hello World"),
    ("whitespace-collapsed", b"Subject:  a \t b\r\n  c\r\n\r\n", "a b c"),
    ("raw-utf8", "Subject: Привет\r\n\r\n".encode(), "Привет"),
    ("raw-latin1", "Subject: Café\r\n\r\n".encode("latin-1"), "Café"),
    ("absent", b"From: a@b\r\n\r\n", ""),
]


@pytest.mark.parametrize(("raw", "subject"), [c[1:] for c in SUBJECTS], ids=[c[0] for c in SUBJECTS])
def test_subject(raw: bytes, subject: str) -> None:
    assert parse_message(raw).subject == subject
