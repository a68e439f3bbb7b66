"""SEARCH evaluation (RFC 9051 §6.4.4, RFC 3501 §6.4.4, RFC 7162 §3.1.5 MODSEQ, RFC 5182 `$`)
over the selected mailbox's view.

Invariants:
- Pure over the view except for reads: keys on the EntryInfo (sequence numbers, UIDs, flags,
  internal date, size, MODSEQ) cost nothing; the others load what they need in batches, only
  for the messages still in question: the stored ENVELOPE for FROM, TO, CC, BCC, SUBJECT and
  the SENT* dates, the stored body text for BODY and TEXT (substring matching in the
  database, relate.store.search.fulltext_uids: the trigram index on PostgreSQL, never the
  word index), raw header sections for HEADER and the header half of TEXT. AND evaluates
  its cheapest keys first and narrows the candidates for the rest; OR tests its right side
  only on what its left side did not match.
- Text keys match case-insensitive substrings (str.casefold) of the header as written and
  of its decoded form (RFC 2047 encoded words, display names): "=?utf-8?q?caf=C3=A9?=" is
  found by "café" and by "caf=C3". An empty value matches every message having the header
  (BODY "" and TEXT "" match every message).
- Dates compare without time: the internal date's day in UTC (the store keeps UTC), and the
  Date header's day in the header's own zone; a message without a readable Date header is
  dated by its internal date.
- `$` is the saved result's UIDs (RFC 5182 §2.1), empty when nothing was saved. \\Recent
  matches the session's `recent` UIDs (none in IMAP4rev2, RFC 9051 §2.3.2).
- Recursion depth is bounded by the parser (searchkeys.MAX_SEARCH_DEPTH).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Collection, Iterable, Sequence
from email.utils import parsedate_tz
from typing import Any

from relate.imapd.fetch import MessageCache
from relate.imapd.searchkeys import (
    AllKey,
    And,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    Not,
    Or,
    SearchKey,
    SeqKey,
    SizeKey,
    TextKey,
    UidKey,
)
from relate.imapd.seqset import SequenceSet
from relate.message.address import display_name
from relate.message.dates import parse_date
from relate.message.encoded_words import decode_words
from relate.message.headers import header_text, scan_header
from relate.store import search as store_search
from relate.store.types import SYSTEM_FLAGS, EntryInfo

View = Sequence[tuple[int, EntryInfo]]

# Evaluation cost classes: AND runs cheaper children first.
FREE, INDEX, ENVELOPE, HEADERS = 0, 1, 2, 3
# Restrict a body-text query to the candidates' UIDs when there are at most this many.
FTS_UID_LIMIT = 5000
# Messages whose header sections are held in memory at once.
HEADER_BATCH = 500

ENVELOPE_FIELDS = {"FROM": 2, "TO": 5, "CC": 6, "BCC": 7}


def search(
    key: SearchKey,
    view: View,
    *,
    user_id: int,
    mailbox_id: int,
    cache: MessageCache,
    saved: Sequence[int] | None = None,
    highest_seq: int,
    highest_uid: int,
    recent: Collection[int] = frozenset(),
) -> list[tuple[int, EntryInfo]]:
    """The (sequence number, entry) pairs of `view` that match `key`, in sequence order.

    `view` is the selected mailbox as the session sees it (seq ascending); `saved` the UIDs of
    the saved result `$`; `highest_seq` and `highest_uid` what `*` stands for; `recent` the
    UIDs this session reports \\Recent.
    """
    run = _Search(view, user_id, mailbox_id, cache, saved, highest_seq, highest_uid, recent)
    matched = run.eval(key, set(range(len(view))))
    return [view[i] for i in sorted(matched)]


def cost(key: SearchKey) -> int:
    """How expensive a key is to evaluate (FREE, INDEX, ENVELOPE or HEADERS)."""
    if isinstance(key, And):
        return max((cost(k) for k in key.keys), default=FREE)
    if isinstance(key, Or):
        return max(cost(key.left), cost(key.right))
    if isinstance(key, Not):
        return cost(key.key)
    if isinstance(key, TextKey):
        if key.field == "BODY":
            return INDEX
        return HEADERS if key.field == "TEXT" else ENVELOPE
    if isinstance(key, HeaderKey):
        return HEADERS
    if isinstance(key, DateKey) and key.field == "sent":
        return ENVELOPE
    return FREE


def _matches_date(day: dt.date, op: str, wanted: dt.date) -> bool:
    if op == "before":
        return day < wanted
    if op == "on":
        return day == wanted
    return day >= wanted  # since


def sent_day(value: str | None) -> dt.date | None:
    """The day of a Date header value in its own zone (RFC 9051: time and zone disregarded)."""
    if not value:
        return None
    try:
        fields = parsedate_tz(" ".join(value.split()))
        if fields is not None:
            return dt.date(fields[0], fields[1], fields[2])
    except (ValueError, TypeError, OverflowError):
        pass
    when = parse_date(value)  # the ISO 8601 some senders write
    return None if when is None else when.date()


def address_text(addrs: Sequence[Sequence[Any]] | None) -> str:
    """An ENVELOPE address list as searchable text: each mailbox as it would be written, once
    with its display name as written and once decoded, plus group names."""
    if not addrs:
        return ""
    written: list[str] = []
    decoded: list[str] = []
    for addr in addrs:
        name, _adl, mailbox, host = (list(addr) + [None] * 4)[:4]
        if host is None:  # group start (mailbox is its name) or end
            if mailbox:
                written.append(f"{mailbox}:")
                decoded.append(f"{display_name(mailbox)}:")
            continue
        spec = f"{mailbox or ''}@{host}" if host else (mailbox or "")
        written.append(f"{name} <{spec}>" if name else spec)
        decoded.append(f"{display_name(name)} <{spec}>" if name else spec)
    return ", ".join(written) + "\n" + ", ".join(decoded)


def header_values(section: bytes, name: str) -> list[str] | None:
    """Every value of header `name` in a header section, unfolded; None when it is absent."""
    lname = name.lower()
    fields, _ = scan_header(section, 0, len(section))
    values = [
        header_text(section[f.value_start : f.end].replace(b"\r\n", b"").replace(b"\n", b"").strip())
        for f in fields
        if f.name == lname
    ]
    return values or None


def _texts(value: str) -> tuple[str, str]:
    """A header value as written and decoded (RFC 2047), both searchable."""
    return value, " ".join(decode_words(value).split())


class _Search:
    def __init__(
        self,
        view: View,
        user_id: int,
        mailbox_id: int,
        cache: MessageCache,
        saved: Sequence[int] | None,
        highest_seq: int,
        highest_uid: int,
        recent: Collection[int],
    ) -> None:
        self.view = view
        self.user_id = user_id
        self.mailbox_id = mailbox_id
        self.cache = cache
        self.saved = frozenset(saved or ())
        self.highest_seq = highest_seq
        self.highest_uid = highest_uid
        self.recent = frozenset(recent)
        self._envelopes: dict[int, list[Any]] = {}  # body_id -> ENVELOPE, loaded on demand
        self._by_uid: dict[int, int] | None = None  # UID -> view index

    def entry(self, i: int) -> EntryInfo:
        return self.view[i][1]

    def eval(self, key: SearchKey, cand: set[int]) -> set[int]:
        if not cand:
            return cand
        if isinstance(key, And):
            for k in sorted(key.keys, key=cost):
                cand = self.eval(k, cand)
                if not cand:
                    break
            return cand
        if isinstance(key, Or):
            left = self.eval(key.left, cand)
            return left | self.eval(key.right, cand - left)
        if isinstance(key, Not):
            return cand - self.eval(key.key, cand)
        if isinstance(key, AllKey):
            return cand
        if isinstance(key, FlagKey):
            return self._flag(key, cand)
        if isinstance(key, SeqKey):
            return self._numbers(key.seqset, cand, self.highest_seq, lambda i: self.view[i][0])
        if isinstance(key, UidKey):
            return self._numbers(key.seqset, cand, self.highest_uid, lambda i: self.entry(i).uid)
        if isinstance(key, SizeKey):
            if key.larger:
                return {i for i in cand if self.entry(i).size > key.size}
            return {i for i in cand if self.entry(i).size < key.size}
        if isinstance(key, ModSeqKey):
            return {i for i in cand if self.entry(i).modseq >= key.modseq}
        if isinstance(key, DateKey):
            return self._date(key, cand)
        if isinstance(key, TextKey):
            return self._text(key, cand)
        if isinstance(key, HeaderKey):
            return self._header(key.name, key.value, cand)
        raise TypeError(f"unknown search key {key!r}")

    # -- keys on the entry ------------------------------------------------------------------

    def _flag(self, key: FlagKey, cand: set[int]) -> set[int]:
        if key.flag.lower() == "\\recent":
            return {i for i in cand if (self.entry(i).uid in self.recent) == key.present}
        if key.flag in SYSTEM_FLAGS:  # the store spells system flags canonically
            flag = key.flag
            return {i for i in cand if (flag in self.entry(i).flags) == key.present}
        # Keywords (and odd spellings) compare case-insensitively; flag sets repeat a lot.
        lowered = key.flag.lower()
        memo: dict[frozenset[str], bool] = {}
        out: set[int] = set()
        for i in cand:
            flags = self.entry(i).flags
            has = memo.get(flags)
            if has is None:
                has = memo[flags] = any(f.lower() == lowered for f in flags)
            if has == key.present:
                out.add(i)
        return out

    def _numbers(self, seqset: SequenceSet, cand: set[int], star: int, number: Callable[[int], int]) -> set[int]:
        if seqset.saved:  # `$` names messages by UID, also in a sequence-number SEARCH
            return {i for i in cand if self.entry(i).uid in self.saved}
        ranges = seqset.resolve(star)
        if not ranges:
            return set()
        lows = [low for low, _ in ranges]

        def inside(n: int) -> bool:
            at = bisect.bisect_right(lows, n) - 1
            return at >= 0 and n <= ranges[at][1]

        return {i for i in cand if inside(number(i))}

    def _date(self, key: DateKey, cand: set[int]) -> set[int]:
        if key.field == "internal":
            return {i for i in cand if _matches_date(_utc_day(self.entry(i).internal_date), key.op, key.date)}
        self._load_envelopes(cand)
        out: set[int] = set()
        for i in cand:
            entry = self.entry(i)
            day = sent_day(self._envelopes[entry.body_id][0]) or _utc_day(entry.internal_date)
            if _matches_date(day, key.op, key.date):
                out.add(i)
        return out

    # -- keys on the message ----------------------------------------------------------------

    def _load_envelopes(self, cand: Iterable[int]) -> None:
        missing: list[int] = []
        for i in cand:
            body_id = self.entry(i).body_id
            if body_id in self._envelopes:
                continue
            parsed = self.cache.peek_parsed(body_id)
            if parsed is not None:
                self._envelopes[body_id] = parsed.envelope
            else:
                missing.append(body_id)
        if missing:
            loaded = store_search.envelopes(missing)
            for body_id in missing:
                self._envelopes[body_id] = loaded.get(body_id) or [None] * 10

    def _text(self, key: TextKey, cand: set[int]) -> set[int]:
        if key.field in ("BODY", "TEXT"):
            return self._fulltext(key, cand)
        needle = store_search.normalise(key.value).casefold()
        self._load_envelopes(cand)
        out: set[int] = set()
        for i in cand:
            env = self._envelopes[self.entry(i).body_id]
            texts: tuple[str, ...] | None
            if key.field == "SUBJECT":
                value = env[1]
                texts = _texts(value) if value is not None else None
            else:
                addrs = env[ENVELOPE_FIELDS[key.field]]
                texts = (address_text(addrs),) if addrs else None
            if texts is not None and any(store_search.contains(store_search.normalise(t), needle) for t in texts):
                out.add(i)
        return out

    def _fulltext(self, key: TextKey, cand: set[int]) -> set[int]:
        if not key.value:
            return cand
        uids = {self.entry(i).uid for i in cand} if len(cand) <= FTS_UID_LIMIT else None
        field = "body" if key.field == "BODY" else "text"
        found = store_search.fulltext_uids(self.user_id, self.mailbox_id, field, key.value, uids=uids)
        by_uid = self._uid_index()
        matched = {by_uid[u] for u in found if u in by_uid} & cand
        if key.field == "TEXT":  # the whole header counts too, not only the indexed fields
            matched |= self._header(None, key.value, cand - matched)
        return matched

    def _uid_index(self) -> dict[int, int]:
        if self._by_uid is None:
            self._by_uid = {e.uid: i for i, (_, e) in enumerate(self.view)}
        return self._by_uid

    def _header(self, name: str | None, value: str, cand: set[int]) -> set[int]:
        """HEADER name value; with name None, any header field (the header half of TEXT)."""
        needle = store_search.normalise(value).casefold()
        out: set[int] = set()
        by_body: dict[int, list[int]] = {}
        for i in sorted(cand):
            by_body.setdefault(self.entry(i).body_id, []).append(i)
        body_ids = list(by_body)
        for start in range(0, len(body_ids), HEADER_BATCH):
            batch = body_ids[start : start + HEADER_BATCH]
            for body_id, section in self._header_sections(batch).items():
                if _header_matches(section, name, needle):
                    out.update(by_body[body_id])
        return out

    def _header_sections(self, body_ids: Sequence[int]) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        missing: list[int] = []
        for body_id in body_ids:
            raw, parsed = self.cache.peek_raw(body_id), self.cache.peek_parsed(body_id)
            if raw is not None and parsed is not None:
                out[body_id] = raw[parsed.body.header_start : parsed.body.header_end]
            else:
                missing.append(body_id)
        if missing:
            out.update(store_search.header_sections(missing))
        return out


def _utc_day(when: dt.datetime) -> dt.date:
    return (when if when.tzinfo is None else when.astimezone(dt.UTC)).date()


def _header_matches(section: bytes, name: str | None, needle: str) -> bool:
    if name is None:
        texts = _texts(header_text(section.replace(b"\r\n", b"\n")))
        return any(store_search.contains(store_search.normalise(t), needle) for t in texts)
    values = header_values(section, name)
    if values is None:
        return False
    if not needle:
        return True
    return any(store_search.contains(store_search.normalise(t), needle) for v in values for t in _texts(v))
