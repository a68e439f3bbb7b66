"""SEARCH keys answered from the view alone (sequence numbers, UIDs, `$`, flags, keywords,
\\Recent, internal dates, sizes, MODSEQ) and the boolean structure: no store involved."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from relate.imapd import search as imap_search
from relate.imapd import searchkeys as sk
from relate.imapd.commands import Search
from relate.imapd.fetch import MessageCache
from relate.store.types import EntryInfo
from tests.imapd import run_parser


def loader(_: object) -> object:
    raise AssertionError("these keys must not read the store")


UTC = dt.UTC
# (uid, flags, size, internal date, modseq); sequence numbers are positions 1..8.
ROWS = [
    (3, {"\\Seen"}, 500, dt.datetime(2026, 3, 1, 0, 0, 0, tzinfo=UTC), 10),
    (5, {"\\Seen", "\\Answered", "$Work"}, 1500, dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC), 11),
    (6, {"\\Flagged"}, 1024, dt.datetime(2026, 3, 2, 0, 0, 0, tzinfo=UTC), 12),
    (10, {"\\Deleted", "\\Seen"}, 1023, dt.datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC), 13),
    (11, {"\\Draft", "$label1"}, 1025, dt.datetime(2026, 3, 3, 1, 0, 0, tzinfo=UTC), 14),
    (20, set(), 10, dt.datetime(2026, 3, 4, 0, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))), 30),
    (21, {"$Work", "\\Seen", "\\Flagged"}, 99999, dt.datetime(2026, 3, 5, 9, 0, 0, tzinfo=UTC), 31),
    (40, {"NonJunk"}, 1, dt.datetime(2025, 12, 31, 23, 0, 0, tzinfo=UTC), 40),
]
VIEW = [
    (seq, EntryInfo(id=uid, mailbox_id=1, uid=uid, modseq=modseq, body_id=uid, size=size, internal_date=when,
                    flags=frozenset(flags)))
    for seq, (uid, flags, size, when, modseq) in enumerate(ROWS, start=1)
]
SEQ_OF = {e.uid: seq for seq, e in VIEW}


def key(wire: str) -> sk.SearchKey:
    parsed, _, _ = run_parser(b"A1 SEARCH " + wire.encode() + b"\r\n")
    assert isinstance(parsed.command, Search)
    return parsed.command.key


def run(wire: str, *, saved: list[int] | None = None, recent: set[int] | None = None,
        view: list[tuple[int, EntryInfo]] = VIEW) -> list[int]:
    """The matching UIDs (in sequence order)."""
    cache = MessageCache(load_raw=loader, load_parsed=loader, load_parsed_many=loader)  # type: ignore[arg-type]
    found = imap_search.search(
        key(wire), view, user_id=1, mailbox_id=1, cache=cache, saved=saved,
        highest_seq=len(view), highest_uid=view[-1][1].uid if view else 0, recent=recent or set(),
    )
    assert [s for s, _ in found] == sorted(s for s, _ in found)
    return [e.uid for _, e in found]


CASES = [
    # (SEARCH criteria, matching UIDs)
    ("ALL", [3, 5, 6, 10, 11, 20, 21, 40]),
    ("1", [3]),
    ("2:4", [5, 6, 10]),
    ("4:2", [5, 6, 10]),
    ("*", [40]),
    ("7:*", [21, 40]),
    ("*:7", [21, 40]),
    ("1,3,8", [3, 6, 40]),
    ("9", []),
    ("9:*", [40]),  # * is 8 here: 9:* is 8:9
    ("UID 5", [5]),
    ("UID 4", []),
    ("UID 6:20", [6, 10, 11, 20]),
    ("UID 21:*", [21, 40]),
    ("UID 100:*", [40]),  # RFC 9051 §6.4.8: n:* always includes the highest UID
    ("UID *", [40]),
    ("UID 1:4,40", [3, 40]),
    ("SEEN", [3, 5, 10, 21]),
    ("UNSEEN", [6, 11, 20, 40]),
    ("ANSWERED", [5]),
    ("UNANSWERED", [3, 6, 10, 11, 20, 21, 40]),
    ("FLAGGED", [6, 21]),
    ("UNFLAGGED", [3, 5, 10, 11, 20, 40]),
    ("DELETED", [10]),
    ("UNDELETED", [3, 5, 6, 11, 20, 21, 40]),
    ("DRAFT", [11]),
    ("UNDRAFT", [3, 5, 6, 10, 20, 21, 40]),
    ("KEYWORD $Work", [5, 21]),
    ("KEYWORD $work", [5, 21]),  # keywords compare case-insensitively
    ("KEYWORD $LABEL1", [11]),
    ("KEYWORD nonjunk", [40]),
    ("KEYWORD $Missing", []),
    ("UNKEYWORD $WORK", [3, 6, 10, 11, 20, 40]),
    ("RECENT", []),  # IMAP4rev2: nothing is recent unless the session says so
    ("NEW", []),
    ("OLD", [3, 5, 6, 10, 11, 20, 21, 40]),
    ("LARGER 1024", [5, 11, 21]),
    ("SMALLER 1024", [3, 10, 20, 40]),
    ("LARGER 0", [3, 5, 6, 10, 11, 20, 21, 40]),
    ("SMALLER 1", []),
    ("BEFORE 2-Mar-2026", [3, 5, 40]),
    ("ON 1-Mar-2026", [3, 5]),  # 23:59:59 is still the 1st
    ("ON 2-Mar-2026", [6, 10]),
    ("ON 3-Mar-2026", [11, 20]),  # 00:00 at +0200 is the 3rd in UTC
    ("SINCE 4-Mar-2026", [21]),
    ("SINCE 1-Jan-2026", [3, 5, 6, 10, 11, 20, 21]),
    ("BEFORE 1-Jan-1990", []),
    ("MODSEQ 14", [11, 20, 21, 40]),
    ('MODSEQ "/flags/\\\\Seen" all 31', [21, 40]),
    ("MODSEQ 41", []),
    ("SEEN FLAGGED", [21]),
    ("(SEEN FLAGGED) UID 1:10", []),
    ("OR SEEN FLAGGED", [3, 5, 6, 10, 21]),
    ("OR (SEEN UNFLAGGED) 8", [3, 5, 10, 40]),
    ("NOT SEEN", [6, 11, 20, 40]),
    ("NOT NOT SEEN", [3, 5, 10, 21]),
    ("NOT (OR SEEN DELETED)", [6, 11, 20, 40]),
    ("OR OR ANSWERED DRAFT DELETED", [5, 10, 11]),
    ("NOT OR 1:3 5:*", [10]),
    ("1:* UNSEEN NOT KEYWORD nonjunk SMALLER 2000", [6, 11, 20]),
    ("(((ALL)))", [3, 5, 6, 10, 11, 20, 21, 40]),
]


@pytest.mark.parametrize(("wire", "uids"), CASES, ids=[c[0] for c in CASES])
def test_key(wire: str, uids: list[int]) -> None:
    assert run(wire) == uids


SAVED = [
    # (criteria, saved UIDs, matching UIDs)
    ("$", [5, 21, 99], [5, 21]),
    ("UID $", [5, 21, 99], [5, 21]),
    ("NOT $", [5, 21], [3, 6, 10, 11, 20, 40]),
    ("$ SEEN", [3, 6], [3]),
    ("$", [], []),
    ("$", None, []),  # nothing saved: $ is empty (RFC 5182 §2.1)
]


@pytest.mark.parametrize(("wire", "saved", "uids"), SAVED, ids=[f"{w}-{s}" for w, s, _ in SAVED])
def test_saved_result(wire: str, saved: list[int] | None, uids: list[int]) -> None:
    assert run(wire, saved=saved) == uids


def test_recent_comes_from_the_session() -> None:
    assert run("RECENT", recent={6, 20}) == [6, 20]
    assert run("NEW", recent={6, 10, 20}) == [6, 20]
    assert run("OLD", recent={6, 10, 20}) == [3, 5, 11, 21, 40]


def test_empty_view() -> None:
    assert run("ALL", view=[]) == []
    assert run("*", view=[]) == []
    assert run("UID *", view=[]) == []


def test_sequence_numbers_are_the_views() -> None:
    partial = VIEW[3:6]  # seqs 4..6, as when the session passes part of the mailbox
    assert run("4:5", view=partial) == [10, 11]
    assert run("1:3", view=partial) == []


@pytest.mark.usefixtures("no_gc")
def test_a_large_view_is_fast() -> None:
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    seen, work = frozenset({"\\Seen"}), frozenset({"$Work"})
    view = [
        (i, EntryInfo(i, 1, i, i, i, i % 5000, base + dt.timedelta(minutes=i), work if i % 3 == 0 else seen))
        for i in range(1, 100_001)
    ]
    started = time.process_time()
    found = run("OR (UNSEEN KEYWORD $work LARGER 4000) (SINCE 2-Feb-2026 UID 99990:*) NOT DELETED", view=view)
    elapsed = time.process_time() - started
    since = 32 * 24 * 60  # minutes from 1 Jan to 2 Feb
    assert found == [i for i in range(1, 100_001) if (i % 3 == 0 and i % 5000 > 4000) or (i >= since and i >= 99990)]
    assert elapsed < 1.5, f"SEARCH over 100,000 messages took {elapsed:.2f} s"


def test_costs_order_cheap_keys_first() -> None:
    assert imap_search.cost(key("SEEN")) == imap_search.FREE
    assert imap_search.cost(key("BODY x")) == imap_search.INDEX
    assert imap_search.cost(key("FROM x")) == imap_search.ENVELOPE
    assert imap_search.cost(key("SENTON 1-Jan-2026")) == imap_search.ENVELOPE
    assert imap_search.cost(key("HEADER X-A b")) == imap_search.HEADERS
    assert imap_search.cost(key("NOT OR SEEN TEXT x")) == imap_search.HEADERS
    # An AND whose cheap keys leave nothing never touches the store (the loaders would raise).
    assert run("FROM alice HEADER X-A b BODY x TEXT y SENTON 1-Jan-2026 UID 4") == []
