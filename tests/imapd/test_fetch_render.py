"""render_fetch's frame, the items read from the entry alone, and the MessageCache."""

from __future__ import annotations

import datetime as dt
import gc
import weakref

import pytest

from relate.imapd import fetchatt as fa
from relate.imapd.fetch import MessageCache, format_flag_list, needs_metadata, render_fetch, sets_seen
from relate.message import ParsedMessage, parse_message
from relate.store.types import EntryInfo
from tests.imapd.test_fetch_sections import SIMPLE, entry_for, fetch, items, lit

ENTRY_ITEMS = [
    # (FETCH items, response items)
    ("UID", b"UID 11"),
    ("FLAGS", b"FLAGS ()"),
    ("RFC822.SIZE", b"RFC822.SIZE %d" % len(SIMPLE)),
    ("INTERNALDATE", b'INTERNALDATE "04-Mar-2026 05:06:07 +0000"'),
    ("MODSEQ", b"MODSEQ (5)"),
    ("FAST", b'FLAGS () INTERNALDATE "04-Mar-2026 05:06:07 +0000" RFC822.SIZE %d' % len(SIMPLE)),
    ("(UID FLAGS UID)", b"UID 11 FLAGS ()"),
    ("(RFC822.SIZE UID)", b"RFC822.SIZE %d UID 11" % len(SIMPLE)),
]


@pytest.mark.parametrize(("wire", "expected"), ENTRY_ITEMS, ids=[w for w, _ in ENTRY_ITEMS])
def test_items_from_the_entry(wire: str, expected: bytes) -> None:
    assert fetch("simple", wire) == b"* 1 FETCH (" + expected + b")\r\n"


FLAG_LISTS = [
    ("none", set(), b"()"),
    ("system-order", {"\\Draft", "\\Seen", "\\Answered", "\\Deleted", "\\Flagged"},
     b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft)"),
    ("recent-after-system", {"\\Recent", "\\Seen"}, b"(\\Seen \\Recent)"),
    ("keywords-sorted", {"$Work", "$label1", "Important", "\\Seen"}, b"(\\Seen $label1 $Work Important)"),
]


@pytest.mark.parametrize(("flags", "expected"), [f[1:] for f in FLAG_LISTS], ids=[f[0] for f in FLAG_LISTS])
def test_flag_list(flags: set[str], expected: bytes) -> None:
    assert format_flag_list(flags) == expected


def test_flags_and_modseq_overrides() -> None:
    entry = entry_for("simple")
    out = render_fetch(entry, 7, items("(FLAGS MODSEQ UID)"), MessageCache(), flags=frozenset({"\\Seen"}), modseq=42)
    assert b"".join(out) == b"* 7 FETCH (FLAGS (\\Seen) MODSEQ (42) UID 11)\r\n"


def test_uid_added_by_the_session_for_uid_fetch() -> None:
    attributes = (*items("(FLAGS BODY.PEEK[HEADER.FIELDS (To)])"), fa.Uid())
    out = b"".join(render_fetch(entry_for("simple"), 3, attributes, cache_with(SIMPLE)))
    assert out == b"* 3 FETCH (FLAGS () BODY[HEADER.FIELDS (To)] " + lit(b"To: bob@example.org\r\n\r\n") + b" UID 11)\r\n"


def test_internal_date_in_another_zone_is_shown_as_stored() -> None:
    zone = dt.timezone(dt.timedelta(hours=-7))
    entry = EntryInfo(1, 1, 1, 1, 1, 1, dt.datetime(1996, 7, 17, 2, 44, 25, tzinfo=zone), frozenset())
    out = b"".join(render_fetch(entry, 1, items("INTERNALDATE"), MessageCache()))
    assert out == b'* 1 FETCH (INTERNALDATE "17-Jul-1996 02:44:25 -0700")\r\n'


def test_full_macro() -> None:
    assert fetch("simple", "FULL").startswith(
        b'* 1 FETCH (FLAGS () INTERNALDATE "04-Mar-2026 05:06:07 +0000" RFC822.SIZE %d ENVELOPE (' % len(SIMPLE)
    )
    assert fetch("simple", "FULL").endswith(b' BODY ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 19 2))\r\n')


def test_sets_seen() -> None:
    assert sets_seen(items("(FLAGS BODY[TEXT])"))
    assert sets_seen(items("RFC822"))
    assert sets_seen(items("BINARY[1]"))
    assert not sets_seen(items("(BODY.PEEK[] BINARY.PEEK[1] RFC822.HEADER BINARY.SIZE[1] BODYSTRUCTURE)"))
    assert not sets_seen(())


def test_needs_metadata() -> None:
    assert not needs_metadata(items("(FLAGS UID MODSEQ INTERNALDATE RFC822.SIZE)"))
    assert needs_metadata(items("(FLAGS ENVELOPE)"))
    assert not needs_metadata(items("(UID BODY.PEEK[] RFC822)"))
    assert needs_metadata(items("(UID BODY.PEEK[]<0.100> BODY[TEXT])"))
    assert needs_metadata(items("BINARY.SIZE[1]"))


# -- loading ---------------------------------------------------------------------------------


class Loads:
    """Stand-in store that counts what is loaded."""

    def __init__(self, messages: dict[int, bytes]) -> None:
        self.messages = messages
        self.raw: list[int] = []
        self.parsed: list[int] = []
        self.batches: list[list[int]] = []

    def load_raw(self, body_id: int) -> bytes:
        self.raw.append(body_id)
        return self.messages[body_id]

    def load_parsed(self, body_id: int) -> ParsedMessage:
        self.parsed.append(body_id)
        return parse_message(self.messages[body_id])

    def load_many(self, body_ids: list[int]) -> dict[int, ParsedMessage]:
        self.batches.append(list(body_ids))
        return {b: parse_message(self.messages[b]) for b in body_ids}

    def cache(self, max_bytes: int = 1 << 20) -> MessageCache:
        return MessageCache(
            max_bytes, load_raw=self.load_raw, load_parsed=self.load_parsed, load_parsed_many=self.load_many
        )


def cache_with(raw: bytes) -> MessageCache:
    return Loads({i: raw for i in range(1, 10)}).cache()


def entry(body_id: int, size: int) -> EntryInfo:
    return EntryInfo(body_id, 1, body_id, 1, body_id, size, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), frozenset())


def test_metadata_items_never_load_the_raw_message() -> None:
    loads = Loads({i: SIMPLE for i in range(1, 201)})
    cache = loads.cache()
    for i in range(1, 201):
        render_fetch(entry(i, len(SIMPLE)), i, items("(FLAGS UID ENVELOPE BODYSTRUCTURE)"), cache)
    assert loads.raw == []
    assert loads.parsed == list(range(1, 201))


def test_entry_items_load_nothing() -> None:
    loads = Loads({1: SIMPLE})
    render_fetch(entry(1, len(SIMPLE)), 1, items("(FLAGS UID RFC822.SIZE INTERNALDATE MODSEQ)"), loads.cache())
    assert loads.raw == [] and loads.parsed == []


def test_sections_load_the_raw_message_once() -> None:
    loads = Loads({1: SIMPLE})
    cache = loads.cache()
    render_fetch(entry(1, len(SIMPLE)), 1, items("(BODY[] BODY[HEADER] BODY[TEXT] BODY[1])"), cache)
    render_fetch(entry(1, len(SIMPLE)), 1, items("BODY.PEEK[]"), cache)
    assert loads.raw == [1]
    assert loads.parsed == [1]


def test_whole_message_needs_no_metadata() -> None:
    loads = Loads({1: SIMPLE})
    render_fetch(entry(1, len(SIMPLE)), 1, items("(BODY.PEEK[] RFC822)"), loads.cache())
    assert loads.parsed == []


def test_preload_reads_ahead_in_windows() -> None:
    loads = Loads({i: SIMPLE for i in range(1, 1301)})
    cache = loads.cache(max_bytes=64 << 20)
    cache.preload([*range(1, 1201), 5, 5])
    assert [len(b) for b in loads.batches] == [500]  # only the first window now
    for i in range(1, 1201):
        render_fetch(entry(i, len(SIMPLE)), i, items("ENVELOPE"), cache)
    assert [b[0] for b in loads.batches] == [1, 501, 1001]
    assert [len(b) for b in loads.batches] == [500, 500, 200]
    assert loads.parsed == []
    render_fetch(entry(1250, len(SIMPLE)), 1, items("ENVELOPE"), cache)  # not planned: loaded alone
    assert len(loads.batches) == 3 and loads.parsed == [1250]


def test_preload_windows_fit_a_small_budget() -> None:
    loads = Loads({i: SIMPLE for i in range(1, 1001)})
    cache = loads.cache(max_bytes=200_000)  # about 70 parsed messages
    cache.preload(range(1, 1001))
    for i in range(1, 1001):
        render_fetch(entry(i, len(SIMPLE)), i, items("BODYSTRUCTURE"), cache)
    assert loads.parsed == []  # every message came from a window, none loaded twice
    assert sum(len(b) for b in loads.batches) == 1000
    assert max(len(b) for b in loads.batches) < 100


def test_cache_evicts_least_recently_used_and_skips_huge_messages() -> None:
    small = b"Subject: x\r\n\r\n" + b"y" * 226  # 240 octets: four fit in 1000
    loads = Loads({1: small, 2: small, 3: small, 4: small, 5: small, 6: b"z" * 251})
    cache = loads.cache(max_bytes=1000)
    for body_id in (1, 2, 3, 4, 1, 5):  # 5 pushes out 2, the least recently used
        cache.raw(body_id)
    assert [cache.peek_raw(b) is not None for b in (1, 2, 3, 4, 5)] == [True, False, True, True, True]
    cache.raw(6)
    cache.raw(6)
    assert loads.raw == [1, 2, 3, 4, 5, 6, 6]  # bigger than a quarter of the budget: never kept
    assert cache.peek_parsed(1) is None


def test_large_literals_are_chunks_of_their_own() -> None:
    raw = b"Subject: big\r\n\r\n" + b"x" * 10_000
    chunks = render_fetch(entry(1, len(raw)), 2, items("(UID BODY.PEEK[] FLAGS)"), cache_with(raw))
    assert chunks == [b"* 2 FETCH (UID 1 BODY[] {%d}\r\n" % len(raw), raw, b" FLAGS ())\r\n"]


def test_small_literals_stay_in_one_chunk() -> None:
    chunks = render_fetch(entry(1, len(SIMPLE)), 2, items("BODY.PEEK[TEXT]"), cache_with(SIMPLE))
    assert chunks == [b"* 2 FETCH (BODY[TEXT] {19}\r\nHi Bob.\r\nSee you.\r\n)\r\n"]


def test_envelope_and_bodystructure_are_rendered_once_per_parsed_message_and_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from relate.imapd import bodystructure
    from relate.imapd import fetch as fetch_module

    calls: list[str] = []
    envelope, structure = bodystructure.envelope, bodystructure.body_structure

    def counted_envelope(*args: object, **kwargs: object) -> bytes:
        calls.append("envelope")
        return envelope(*args, **kwargs)  # type: ignore[arg-type]

    def counted_structure(*args: object, **kwargs: object) -> bytes:
        calls.append("structure")
        return structure(*args, **kwargs)  # type: ignore[arg-type]

    expected = {utf8: fetch("simple", "(ENVELOPE BODY BODYSTRUCTURE)", utf8=utf8) for utf8 in (False, True)}
    monkeypatch.setattr(bodystructure, "envelope", counted_envelope)
    monkeypatch.setattr(bodystructure, "body_structure", counted_structure)
    cache = cache_with(SIMPLE)
    attributes = items("(ENVELOPE BODY BODYSTRUCTURE)")
    for _ in range(3):
        for utf8 in (False, True):
            out = b"".join(render_fetch(entry_for("simple"), 1, attributes, cache, utf8=utf8))
            assert out == expected[utf8]
    assert sorted(calls) == ["envelope"] * 2 + ["structure"] * 4  # per form: BODY / BODYSTRUCTURE, UTF-8 or not
    parsed = cache.parsed(entry_for("simple").body_id)
    key, alive = id(parsed), weakref.ref(parsed)
    assert key in fetch_module._rendered
    del parsed
    cache._lru.items.clear()  # the parsed message goes, and what was rendered from it with it
    gc.collect()
    assert alive() is None and key not in fetch_module._rendered
